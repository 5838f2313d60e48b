"""A tiny declarative validator for the site file (the toolkit; the schema itself is :mod:`.model`).

Every error names the key path that was wrong (``datasets[1].mode``), so an admin
can find it in the YAML without reading a traceback.  Validation is pure: it never
touches Docker, the filesystem or the network.
"""

import re


class ConfigError(ValueError):
    """Configuration is invalid. ``key`` names what was wrong: a site-file key path such as
    ``datasets[1].mode``, or a setting such as ``GPUDockerSpawner.environment.NB_USER``."""

    def __init__(self, key, message):
        self.key = key or "(top level)"
        self.message = message
        super().__init__(f"{self.key}: {message}")

    @property
    def path(self):
        return self.key


def _join(path, key):
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value):
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


class Field:
    """One key: a checker plus a default. ``required`` keys have no default."""

    def __init__(self, check, default=None, required=False):
        self.check = check
        self.default = default
        self.required = required


def string(pattern=None, hint=None, max_len=4096):
    def check(value, path):
        if not isinstance(value, str):
            raise ConfigError(path, f"must be a string, got {_describe(value)}")
        if len(value) > max_len:
            raise ConfigError(path, f"must be at most {max_len} characters")
        if pattern and not re.fullmatch(pattern, value):
            raise ConfigError(path, f"must be {hint or 'match ' + pattern}, got {_describe(value)}")
        return value

    return check


def choice(*options):
    def check(value, path):
        if value not in options:
            wanted = " or ".join(f'"{o}"' for o in options)
            raise ConfigError(path, f"must be {wanted}, got {_describe(value)}")
        return value

    return check


def boolean(value, path):
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {_describe(value)}")
    return value


def integer(minimum=None, maximum=None):
    def check(value, path):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"must be a whole number, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise ConfigError(path, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(path, f"must be at most {maximum}, got {value}")
        return value

    return check


def number(minimum=None, maximum=None):
    def check(value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"must be a number, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise ConfigError(path, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(path, f"must be at most {maximum}, got {value}")
        return float(value)

    return check


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text):
    """'16G' -> bytes. Accepts k/m/g/t with optional 'i'/'b' suffixes."""
    if isinstance(text, bool):
        raise ValueError(text)
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def size(minimum=0):
    """A memory size such as ``16G`` or ``512M``; stored as bytes."""

    def check(value, path):
        try:
            parsed = parse_size(value)
        except ValueError:
            raise ConfigError(
                path, f'must be a size such as "512M" or "16G", got {_describe(value)}'
            )
        if parsed < minimum:
            raise ConfigError(path, f"must be at least {minimum} bytes, got {_describe(value)}")
        return parsed

    return check


def list_of(item, min_items=0):
    def check(value, path):
        if not isinstance(value, list):
            raise ConfigError(path, f"must be a list, got {_describe(value)}")
        if len(value) < min_items:
            raise ConfigError(
                path, f"must have at least {min_items} entr{'y' if min_items == 1 else 'ies'}"
            )
        return [item(v, _join(path, i)) for i, v in enumerate(value)]

    check.item = item
    return check


def mapping(fields, extra=False):
    """A dict with known keys. Unknown keys are an error (a typo must not pass silently)."""

    def check(value, path):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be a mapping of keys, got {_describe(value)}")
        unknown = sorted(set(map(str, value)) - set(fields))
        if unknown and not extra:
            known = ", ".join(sorted(fields))
            raise ConfigError(_join(path, unknown[0]), f"unknown key (known keys here: {known})")
        out = {}
        for key, field in fields.items():
            sub = _join(path, key)
            if key in value and value[key] is not None:
                out[key] = field.check(value[key], sub)
            elif field.required:
                raise ConfigError(sub, "is required")
            else:
                default = field.default() if callable(field.default) else field.default
                out[key] = field.check(default, sub) if default is not None else None
        return out

    check.fields = fields  # for key_paths (the admin guide's test)
    return check


def dict_of(value_check, key_pattern=r".{1,200}", key_hint="a name"):
    """A mapping with free-form keys (e.g. user names) and checked values."""

    def check(value, path):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be a mapping, got {_describe(value)}")
        out = {}
        for key, item in value.items():
            key = str(key)
            if not re.fullmatch(key_pattern, key):
                raise ConfigError(_join(path, key), f"key must be {key_hint}")
            out[key] = value_check(item, _join(path, key))
        return out

    return check


def key_paths(check, prefix=""):
    """Every key path a checker accepts (``hub.bind_url``, ``profiles[].gpus``), for docs and tests."""
    fields = getattr(check, "fields", None)
    if fields is None:
        item = getattr(check, "item", None)
        return (
            key_paths(item, prefix + "[]") if item is not None and hasattr(item, "fields") else []
        )
    out = []
    for key, field in fields.items():
        path = _join(prefix, key)
        out.append(path)
        out += key_paths(field.check, path)
    return out


def default_at(check, path):
    """The validated default of the key at dotted ``path`` (``containers.pids_limit``), as the
    schema writes it: the one place a default lives. Sizes come back in bytes."""
    key, _, rest = path.partition(".")
    field = check.fields[key]
    if rest:
        return default_at(field.check, rest)
    if field.required:
        raise KeyError(f"{path} is required: it has no default")
    default = field.default() if callable(field.default) else field.default
    return field.check(default, path) if default is not None else None
