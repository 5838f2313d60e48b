"""Spawn options: parse the HTML form and validate what the user asked for.

Both functions are pure.  ``validate_options`` runs before any Docker object exists;
it raises :class:`OptionError` naming the field, which the spawner turns into HTTP 400.
The same validation serves the spawn form and the REST API
(``POST /hub/api/users/{name}/server`` with a JSON body).
"""

from dataclasses import dataclass

MAX_TEXT = 200
KNOWN_FIELDS = ("profile", "gpus", "gpu_ids", "save")
SWARM_FIELDS = (
    "profile",
    "gpus",
    "node",
    "save",
)  # on a Swarm: a node may be chosen, specific GPUs not
MAX_GPU_IDS = 64


class OptionError(ValueError):
    def __init__(self, field, message):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class SpawnRequest:
    """What a validated spawn asks for."""

    profile: dict
    gpus: int
    gpu_ids: tuple = ()  # specific GPUs (UUIDs), empty = any free ones
    node: str = ""  # swarm mode: the GPU server chosen, empty = any
    save: str = (
        ""  # start from this saved environment of the user (its tag), empty = the profile's image
    )


def options_from_form(formdata):
    """Form fields arrive as lists of strings; keep the first value of each field.

    Unknown fields are kept so that validation can reject them with their name.
    """
    options = {}
    for key, values in formdata.items():
        if isinstance(values, (list, tuple)):
            options[key] = values[0] if values else ""
        else:
            options[key] = values
    return options


def _as_int(field, value, lo, hi):
    if isinstance(value, bool):
        raise OptionError(field, f"must be a whole number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 6 or not text.lstrip("-").isdigit():
            raise OptionError(field, f"must be a whole number, got {value[:20]!r}")
        value = int(text)
    if not isinstance(value, int):
        raise OptionError(field, f"must be a whole number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise OptionError(field, f"must be between {lo} and {hi}, got {value}")
    return value


def _gpu_ids(value, inventory):
    """Specific GPUs by index (as people see them) or UUID -> UUIDs."""
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if not isinstance(value, list):
        raise OptionError(
            "gpu_ids", f"must be a list of GPU indices or UUIDs, got {type(value).__name__}"
        )
    if len(value) > MAX_GPU_IDS:
        raise OptionError("gpu_ids", f"lists more than {MAX_GPU_IDS} GPUs")
    by_index = {str(g.index): g.uuid for g in inventory}
    uuids = {g.uuid for g in inventory}
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, str)) or len(str(item)) > MAX_TEXT:
            raise OptionError(
                "gpu_ids", f"entries must be GPU indices or UUIDs, got {str(item)[:40]!r}"
            )
        key = str(item).strip()
        uuid = by_index.get(key) or (key if key in uuids else None)
        if uuid is None:
            have = ", ".join(sorted(by_index, key=int)) or "none"
            raise OptionError(
                "gpu_ids", f"GPU {key[:40]!r} does not exist on this host (GPUs: {have})"
            )
        if uuid in out:
            raise OptionError("gpu_ids", f"GPU {key!r} is listed twice")
        out.append(uuid)
    return tuple(out)


def validate_options(
    user_options, profiles, default_profile, *, inventory=(), nodes=None, largest=None, saves=None
):
    """Check ``user_options`` against the site's profiles and GPU limits; return a SpawnRequest.

    ``inventory`` is the host's GPUs. On a Swarm, ``nodes`` names the GPU servers (a ``node``
    option may choose one; specific GPUs may not be asked for) and ``largest`` is the most GPUs any
    one of them has (a request for more can never be served). ``saves`` maps the user's saved
    environments (tags) to the profile each came from: a ``save`` option starts one, with that
    profile's limits. The user's quota is not checked
    here but by the allocator, at the moment GPUs are claimed (a check against a snapshot could be raced).
    """
    known = SWARM_FIELDS if nodes is not None else KNOWN_FIELDS
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, dict):
        raise OptionError("options", f"must be a JSON object, got {type(user_options).__name__}")
    unknown = sorted(str(k)[:MAX_TEXT] for k in user_options if k not in known)
    if unknown:
        raise OptionError(unknown[0], f"unknown option (allowed: {', '.join(known)})")

    by_name = {p["name"]: p for p in profiles}
    name = user_options.get("profile", default_profile)
    save = user_options.get("save") or ""
    if save:
        if not isinstance(save, str) or len(save) > MAX_TEXT:
            raise OptionError("save", "must be the name of one of your saved environments")
        if save not in (saves or {}):
            raise OptionError("save", f"{save!r} is not one of your saved environments")
        # a save starts with the limits of the profile it came from: that is the profile it runs
        # (and is reclaimed and saved again) as; another profile named with it is a mistake
        asked = user_options.get("profile")
        if asked not in (None, "", saves[save]):
            raise OptionError(
                "save",
                f"{save!r} was saved from profile {saves[save]!r}, not {str(asked)[:MAX_TEXT]!r}: "
                "start it as it was saved, or choose the profile's own image",
            )
        name = saves[save]
    if not isinstance(name, str):
        raise OptionError("profile", f"must be a string, got {type(name).__name__}")
    if len(name) > MAX_TEXT:
        raise OptionError("profile", f"is longer than {MAX_TEXT} characters")
    if name not in by_name:
        raise OptionError(
            "profile", f"{name!r} is not an offered profile (choose from: {', '.join(by_name)})"
        )
    profile = by_name[name]

    gpu_ids = (
        _gpu_ids(user_options["gpu_ids"], inventory)
        if user_options.get("gpu_ids") not in (None, "", [])
        else ()
    )
    available = (largest or 0) if nodes is not None else len(inventory)
    default = len(gpu_ids) if gpu_ids else min(profile["gpus"], available)
    gpus = user_options.get("gpus", default)
    if gpus == "" or gpus is None:
        gpus = default
    gpus = _as_int("gpus", gpus, 0, 1024)
    if gpus > profile["max_gpus"]:
        raise OptionError(
            "gpus",
            f"{gpus} is over the limit of {profile['max_gpus']} for profile {profile['name']!r}",
        )
    if gpu_ids and gpus != len(gpu_ids):
        raise OptionError("gpus", f"asks for {gpus} GPU(s) but gpu_ids names {len(gpu_ids)}")
    node = user_options.get("node") or ""
    if node and (not isinstance(node, str) or node not in (nodes or ())):
        raise OptionError(
            "node",
            f"{str(node)[:40]!r} is not a GPU server of this lab (servers: {', '.join(sorted(nodes or ())) or 'none'})",
        )
    if nodes is not None:
        if gpus > (largest or 0):
            raise OptionError(
                "gpus", f"{gpus} requested but no GPU server has more than {largest or 0} GPU(s)"
            )
    elif gpus > len(inventory):
        raise OptionError("gpus", f"{gpus} requested but this host has {len(inventory)} GPU(s)")
    return SpawnRequest(profile=profile, gpus=gpus, gpu_ids=gpu_ids, node=node, save=save)
