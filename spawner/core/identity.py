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


UID_MIN, UID_MAX = 1000, 2**32 - 2  # no system account's uid, no "nobody"/-1
SOURCES = ("hub", "claim", "map")
#: where a login from the lab's sign-in service keeps the uid and gid its claims named
INFO_KEY = "gpulab"


class UidError(ValueError):
    """No uid for this user (a missing claim, not in the map, taken): the message says why."""


def user_uid(uid_base, user_id):
    """A stable uid per hub user: the hub's user id is unique and never reused."""
    return uid_base + int(user_id)


def check_uid(value, what):
    """An int uid or gid in the range a lab's directory uses; UidError naming ``what`` if not."""
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise UidError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not UID_MIN <= n <= UID_MAX:
        raise UidError(f"{what} {n} is outside {UID_MIN}..{UID_MAX} (system accounts are not lent)")
    return n


def resolve(source, *, uid_base, gid, user_id, username, info=None, uid_map=None, claim="uid"):
    """(uid, gid) of a user by the site's ``users.uid_source``:

    * ``hub``: ``uid_base`` + the hub's user id, the group ``gid``;
    * ``claim``: what the lab's sign-in service said at the user's last login (``info``: the
      ``uid``/``gid`` the login kept; ``claim`` names the claim for the message);
    * ``map``: the site file's ``users.uid_map`` entry (``{"uid": .., "gid": ..}``).
    """
    if source == "hub":
        return user_uid(uid_base, user_id), gid
    if source == "claim":
        info = info or {}
        if info.get("uid") is None:
            raise UidError(
                f"the sign-in service gave no {claim} for {username} at their last login, so "
                "their files' owner is not known: the admin adds the claim to their account "
                "(then they log in again)"
            )
        return check_uid(info["uid"], f"{claim} of {username}"), (
            check_uid(info["gid"], f"group of {username}") if info.get("gid") is not None else gid
        )
    if source == "map":
        entry = (uid_map or {}).get(username)
        if entry is None:
            raise UidError(f"{username} has no uid in the site file's users.uid_map: ask the admin")
        return entry["uid"], entry["gid"] if entry.get("gid") is not None else gid
    raise UidError(f"unknown uid source {source!r} (known: {', '.join(SOURCES)})")


def claimed_ids(claims, uid_claim, gid_claim):
    """{"uid", "gid"} from a login's claims (None where a claim is missing or not a valid id):
    what the sign-in service says, kept with the user for their next start."""

    def one(name):
        if not name or claims.get(name) in (None, ""):
            return None
        try:
            return check_uid(claims[name], name)
        except UidError:
            return None

    return {"uid": one(uid_claim), "gid": one(gid_claim)}
