"""Who a user is inside their container: the login name and uid the image's ``gpulab-start``
creates (see :mod:`.contract`). Pure."""

import re

UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def unix_name(username):
    """A valid login name inside the container for a hub username.

    Only used inside the user's own container, so two hub users mapping to the same
    login name is harmless; Docker object names use the injective escape instead.
    """
    name = re.sub(r"[^a-z0-9_-]", "_", username.lower())
    if not name[:1].isalpha():
        name = "u" + name
    name = name[:32]
    assert UNIX_NAME.fullmatch(name), name
    return name


def user_uid(uid_base, user_id):
    """A stable uid per hub user: the hub's user id is unique and never reused."""
    return uid_base + int(user_id)
