"""Spawn options: parse the HTML form and validate what the user asked for.

Both functions are pure.  ``validate_options`` runs before any Docker object exists;
it raises :class:`OptionError` naming the field, which the spawner turns into HTTP 400.
The same validation serves the spawn form and the REST API
(``POST /hub/api/users/{name}/server`` with a JSON body).
"""

from dataclasses import dataclass

MAX_TEXT = 200
KNOWN_FIELDS = ("profile", "gpus")


class OptionError(ValueError):
    def __init__(self, field, message):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class SpawnRequest:
    """What a validated spawn asks for."""

    profile: dict
    gpus: int


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


def validate_options(user_options, profiles, default_profile):
    """Check ``user_options`` against the site's profiles; return a SpawnRequest."""
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, dict):
        raise OptionError("options", f"must be a JSON object, got {type(user_options).__name__}")
    unknown = sorted(str(k)[:MAX_TEXT] for k in user_options if k not in KNOWN_FIELDS)
    if unknown:
        raise OptionError(unknown[0], f"unknown option (allowed: {', '.join(KNOWN_FIELDS)})")

    by_name = {p["name"]: p for p in profiles}
    name = user_options.get("profile", default_profile)
    if not isinstance(name, str):
        raise OptionError("profile", f"must be a string, got {type(name).__name__}")
    if len(name) > MAX_TEXT:
        raise OptionError("profile", f"is longer than {MAX_TEXT} characters")
    if name not in by_name:
        raise OptionError("profile", f"{name!r} is not an offered profile (choose from: {', '.join(by_name)})")
    profile = by_name[name]

    gpus = user_options.get("gpus", profile["gpus"])
    gpus = _as_int("gpus", gpus, 0, profile["max_gpus"])
    return SpawnRequest(profile=profile, gpus=gpus)
