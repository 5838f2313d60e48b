"""The site file's schema (``gpulab.yaml``): every key, its check and its default, and the
cross-key checks. This is the one place a default is written: the spawner's traits take theirs
from here (:func:`default`), and the spec's dataclasses have none.

``load_site(path)`` returns plain dicts with every default filled in, or raises
:class:`ConfigError` naming the key path. Nothing here talks to Docker.
"""

import ipaddress
import os
from urllib.parse import urlparse

import yaml

from .. import contract, identity
from .schema import (
    ConfigError,
    Field,
    boolean,
    choice,
    default_at,
    dict_of,
    integer,
    list_of,
    mapping,
    number,
    size,
    string,
)

NAME = r"[a-z][a-z0-9_-]{0,30}"

CLAIM = r"([A-Za-z0-9_.:-]{1,100})?"


def uid_entry(value, path):
    """A users.uid_map entry: a uid, or {uid: .., gid: ..}."""
    if isinstance(value, bool):
        raise ConfigError(path, "must be a uid or {uid: .., gid: ..}")
    if isinstance(value, int):
        value = {"uid": value}
    if not isinstance(value, dict) or set(value) - {"uid", "gid"} or "uid" not in value:
        raise ConfigError(path, "must be a uid or {uid: .., gid: ..}")
    out = {"gid": None}
    for key in ("uid", "gid"):
        if value.get(key) is None:
            continue
        if isinstance(value[key], bool) or not isinstance(value[key], int):
            raise ConfigError(f"{path}.{key}", f"must be a number, got {value[key]!r}")
        try:
            out[key] = identity.check_uid(value[key], key)
        except identity.UidError as e:
            raise ConfigError(f"{path}.{key}", str(e)) from None
    return out


# Swarm placement constraints gpulab understands (and applies to its own GPU choice too)
CONSTRAINT = r"node\.(hostname|role|labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*[A-Za-z0-9_.:-]+"
CONSTRAINT_HINT = "a placement constraint such as node.labels.gpulab.gpu-model==NVIDIA-A100 or node.hostname!=gpu3"
NAME_HINT = "lowercase letters, digits, '-' or '_', starting with a letter (max 31)"
ABS_PATH = r"/[^\0]*"
USERNAME = r"[^\s/]{1,100}"


def _url(schemes):
    def check(value, path):
        string()(value, path)
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            want = ", ".join(f"{s}://" for s in schemes)
            raise ConfigError(path, f'must be a URL starting with {want}, got "{value}"')
        return value

    return check


def _subnet(value, path):
    string()(value, path)
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise ConfigError(path, f'must be a subnet such as "172.30.240.0/24": {e}')
    if not net.is_private or net.version != 4 or net.prefixlen > 29:
        raise ConfigError(path, f'must be a private IPv4 subnet of /29 or larger, got "{value}"')
    return value


#: Where user containers may not connect by default (hub.egress_blocked): the private and link-local
#: ranges (the lab's LAN, other Docker networks, cloud metadata at 169.254.169.254), shared and
#: benchmark addresses. A lab whose machines have public addresses lists its own ranges too.
EGRESS_BLOCKED = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "198.18.0.0/15",
)


def _cidr(value, path):
    string()(value, path)
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        raise ConfigError(
            path, f'must be an address range such as "10.0.0.0/8" or "203.0.113.0/24": {e}'
        )
    if net.version != 4:
        raise ConfigError(
            path, f'must be an IPv4 range (user containers have no IPv6), got "{value}"'
        )
    return str(net)


def _ip_address(value, path):
    string()(value, path)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(
            path, f'must be an IP address such as "127.0.0.1" or "0.0.0.0", got "{value}"'
        )
    return value


def _port_base(value, path):
    integer(0, 64535)(value, path)
    if 0 < value < 1024:
        raise ConfigError(path, f"must be 0 (no direct SSH ports) or at least 1024, got {value}")
    return value


_profile = mapping(
    {
        "name": Field(string(NAME, NAME_HINT), required=True),
        "display_name": Field(string(max_len=200)),
        "description": Field(string(max_len=2000), default=""),
        "image": Field(
            string(r"[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}", "a Docker image reference"),
            required=True,
        ),
        "gpus": Field(integer(0, 64), default=0),
        "max_gpus": Field(integer(0, 64)),
        "mem_limit": Field(size(64 * 1024**2)),
        "cpu_limit": Field(number(0.01, 1024)),
        "shm_size": Field(size(1024**2), default="1G"),
        "constraints": Field(list_of(string(CONSTRAINT, CONSTRAINT_HINT)), default=list),
        "gpu_idle_minutes": Field(number(1, 30 * 24 * 60)),  # this profile's own reclaim idle limit
    }
)

_dataset = mapping(
    {
        "name": Field(string(NAME, NAME_HINT), required=True),
        "source": Field(
            string(
                r"(/[^\0]*|[a-zA-Z0-9][a-zA-Z0-9_.-]*)",
                "an absolute host path or a Docker volume name",
            ),
            required=True,
        ),
        "target": Field(string(ABS_PATH, "an absolute path in the container"), required=True),
        "mode": Field(choice("ro", "rw"), default="ro"),
    }
)

_oauth = {
    "client_id": Field(string()),
    "client_secret_env": Field(string(r"[A-Z_][A-Z0-9_]*", "an environment variable name")),
    "callback_url": Field(_url(["http", "https"])),
    "allowed_users": Field(list_of(string(USERNAME)), default=list),
    "allowed_groups": Field(list_of(string()), default=list),
}

_gpu_device = mapping(
    {
        "index": Field(integer(0, 1023), required=True),
        "uuid": Field(
            string(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", "a GPU UUID such as GPU-5a1c…"),
            required=True,
        ),
        "model": Field(string(max_len=200), default="GPU"),
        "memory": Field(size(), required=True),
    }
)


def _devices(value, path):
    if value == "auto":
        return value
    if not isinstance(value, list):
        raise ConfigError(path, f'must be "auto" (ask NVML) or a list of GPUs, got {value!r}')
    return list_of(_gpu_device)(value, path)


_gpus = mapping(
    {
        "devices": Field(_devices, default="auto"),
        "mode": Field(choice("exclusive", "shared"), default="exclusive"),
        "max_shared": Field(integer(1, 64), default=2),
        "shared_overrides": Field(
            dict_of(integer(1, 64), r"GPU-[A-Za-z0-9_.:-]+|\d{1,4}", "a GPU UUID or index"),
            default=dict,
        ),
        "wait": Field(boolean, default=True),
        "wait_timeout": Field(integer(1, 86400), default=600),
        "show_holders": Field(boolean, default=True),
        # who waits first: fewer GPU-hours held in the last fair_share_days (then arrival), or
        # arrival only
        "queue_order": Field(choice("fair-share", "first-come"), default="fair-share"),
        "fair_share_days": Field(integer(1, 90), default=7),
        "readings": Field(choice("auto", "nvml", "push"), default="auto"),
        "reclaim": Field(
            mapping(
                {
                    "enabled": Field(boolean, default=False),
                    "idle_percent": Field(number(0, 100), default=5),
                    "idle_minutes": Field(number(0.1, 7 * 24 * 60), default=60),
                    "grace_minutes": Field(number(0, 24 * 60), default=15),
                    "full_idle_minutes": Field(number(0, 7 * 24 * 60), default=0),
                    "max_hours": Field(number(0, 365 * 24), default=0),
                    "interval": Field(integer(1, 3600), default=30),
                }
            ),
            default=dict,
        ),
        "quota": Field(
            mapping(
                {
                    "default": Field(integer(0, 1024)),
                    "users": Field(
                        dict_of(integer(0, 1024), USERNAME, "a user name"), default=dict
                    ),
                    "groups": Field(
                        dict_of(integer(0, 1024), USERNAME, "a group name"), default=dict
                    ),
                }
            ),
            default=dict,
        ),
    }
)

SCHEMA = mapping(
    {
        "hub": Field(
            mapping(
                {
                    "name": Field(string(NAME, NAME_HINT), default="gpulab"),
                    "bind_url": Field(_url(["http", "https"]), default="http://127.0.0.1:8000"),
                    "db_url": Field(
                        _url(["sqlite", "postgresql", "postgresql+psycopg2", "postgres"]),
                        default="sqlite:///gpulab.sqlite",
                    ),
                    "state_dir": Field(string(), default="."),
                    "api_port": Field(integer(1024, 65535), default=8081),
                    "proxy_api_port": Field(integer(1024, 65535), default=8001),
                    "network": Field(string(NAME, NAME_HINT)),
                    "subnet": Field(_subnet, default="172.30.240.0/24"),
                    "start_timeout": Field(integer(10, 3600), default=120),
                    "idle_timeout": Field(integer(0, 30 * 86400), default=0),
                    "docker_threads": Field(integer(1, 64), default=8),
                    "concurrent_starts": Field(integer(0, 256), default=0),
                    "subdomain_host": Field(_url(["http", "https"])),
                    "restrict_egress": Field(boolean, default=True),
                    "egress_blocked": Field(list_of(_cidr), default=lambda: list(EGRESS_BLOCKED)),
                    "tls": Field(
                        mapping(
                            {
                                "cert": Field(
                                    string(
                                        ABS_PATH, "an absolute path to a PEM certificate (chain)"
                                    ),
                                    required=True,
                                ),
                                "key": Field(
                                    string(ABS_PATH, "an absolute path to its PEM private key"),
                                    required=True,
                                ),
                                "redirect_port": Field(integer(0, 65535), default=0),
                            }
                        )
                    ),
                    "backup_dir": Field(
                        string(ABS_PATH, "an absolute path such as /srv/backup/gpulab")
                    ),
                }
            ),
            default=dict,
        ),
        "auth": Field(
            mapping(
                {
                    "type": Field(choice("native", "github", "gitlab", "oidc"), default="native"),
                    "admin_users": Field(list_of(string(USERNAME), min_items=1), required=True),
                    "open_signup": Field(boolean, default=False),
                    "failed_logins": Field(integer(1, 1000), default=5),
                    "lockout_seconds": Field(integer(1, 86400), default=300),
                    "github": Field(mapping(_oauth)),
                    "gitlab": Field(mapping({**_oauth, "url": Field(_url(["https", "http"]))})),
                    "oidc": Field(
                        mapping(
                            {
                                **_oauth,
                                "authorize_url": Field(_url(["https", "http"])),
                                "token_url": Field(_url(["https", "http"])),
                                "userdata_url": Field(_url(["https", "http"])),
                                "username_claim": Field(string(), default="sub"),
                                "scope": Field(
                                    list_of(string()),
                                    default=lambda: ["openid", "profile", "email"],
                                ),
                                "admin_groups": Field(list_of(string()), default=list),
                            }
                        )
                    ),
                }
            ),
            required=True,
        ),
        "profiles": Field(list_of(_profile, min_items=1), required=True),
        "default_profile": Field(string(NAME, NAME_HINT)),
        "gpus": Field(lambda v, p: check_gpus(v, p), default=dict),
        "storage": Field(
            mapping(
                {
                    "home": Field(
                        string(
                            r"(/[^\0]*|[a-zA-Z0-9{][a-zA-Z0-9_.{}-]*)",
                            "a volume-name template or an absolute host-path template",
                        ),
                        default="{prefix}-home-{username}",
                    ),
                    "datasets": Field(list_of(_dataset), default=list),
                    "scratch": Field(
                        string(
                            ABS_PATH, "an absolute host-path template such as /scratch/{username}"
                        )
                    ),
                    "scratch_target": Field(
                        string(ABS_PATH, "an absolute path in the container"), default="/scratch"
                    ),
                    "archive": Field(
                        string(ABS_PATH, "an absolute host path such as /srv/gpulab/archive")
                    ),
                    "backups": Field(
                        string(ABS_PATH, "an absolute host path such as /mnt/nas/gpulab-homes")
                    ),
                    "backups_per_user": Field(integer(0, 1000), default=5),
                    "backups_max_size": Field(size(), default="200G"),
                    "backups_keep_days": Field(integer(0, 36500), default=0),
                }
            ),
            default=dict,
        ),
        "users": Field(
            mapping(
                {
                    "sudo": Field(boolean, default=False),
                    "uid_base": Field(integer(1000, 2**31 - 2**20), default=20000),
                    "gid": Field(integer(100, 2**31), default=100),
                    "uid_source": Field(choice(*identity.SOURCES), default="hub"),
                    "uid_claim": Field(
                        string(CLAIM, "a claim name such as uidNumber"), default="uidNumber"
                    ),
                    "gid_claim": Field(string(CLAIM, "a claim name such as gidNumber"), default=""),
                    "uid_map": Field(dict_of(uid_entry), default=dict),
                }
            ),
            default=dict,
        ),
        "cluster": Field(
            mapping(
                {
                    "mode": Field(choice("single", "swarm"), default="single"),
                    "registry": Field(
                        string(
                            r"[A-Za-z0-9.-]+(:\d{1,5})?",
                            "a registry address such as registry.lab.example:5000",
                        )
                    ),
                    "shared_root": Field(
                        string(
                            ABS_PATH,
                            "an absolute path mounted the same on every node, such as /srv/gpulab",
                        )
                    ),
                    "network": Field(string(NAME, NAME_HINT)),
                    "encrypted": Field(boolean, default=True),
                    "user_networks": Field(boolean, default=True),
                    "manager_url": Field(
                        _url(["unix", "tcp", "ssh"]), default="unix:///var/run/docker.sock"
                    ),
                    "hub_image": Field(
                        string(r"[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}", "a Docker image reference")
                    ),
                    "registry_auth": Field(
                        mapping(
                            {
                                "username": Field(
                                    string(r"[A-Za-z0-9._@-]{1,100}", "a registry user name"),
                                    required=True,
                                ),
                                "password_env": Field(
                                    string(r"[A-Z_][A-Z0-9_]*", "an environment variable name"),
                                    required=True,
                                ),
                            }
                        )
                    ),
                    "constraints": Field(
                        list_of(string(CONSTRAINT, CONSTRAINT_HINT)), default=list
                    ),
                }
            ),
            default=dict,
        ),
        "containers": Field(
            mapping(
                {
                    "pids_limit": Field(integer(64, 1 << 22), default=4096),
                    "log_max_size": Field(size(1024**2), default="20M"),
                    "log_max_files": Field(integer(1, 100), default=3),
                }
            ),
            default=dict,
        ),
        "saves": Field(
            mapping(
                {
                    "enabled": Field(boolean, default=True),
                    "max_per_user": Field(integer(0, 100), default=3),
                    "max_size": Field(size(), default="20G"),
                }
            ),
            default=dict,
        ),
        "jobs": Field(lambda v, p: check_jobs(v, p), default=dict),
        "ssh": Field(
            mapping(
                {
                    "enabled": Field(boolean, default=True),
                    "password_login": Field(boolean, default=False),
                    "host_address": Field(_ip_address, default="127.0.0.1"),
                    "port_base": Field(_port_base, default=22000),
                    "public_host": Field(
                        string(
                            r"[A-Za-z0-9.:\[\]-]{1,253}", "a host name or address users connect to"
                        )
                    ),
                    "activity_interval": Field(integer(1, 3600), default=60),
                    "tcp_forwarding": Field(boolean, default=True),
                    "x11_forwarding": Field(boolean, default=True),
                }
            ),
            default=dict,
        ),
        "hooks": Field(
            mapping(
                {
                    "tf_memory_growth": Field(boolean, default=True),
                    "jax_preallocate": Field(boolean, default=False),
                    "tensorboard_logdir": Field(
                        string(
                            r"(~|~/[^\0\n]*|/[^\0\n]*)",
                            "a path in the container such as ~/runs or /scratch/tb",
                        ),
                        default="~/runs",
                    ),
                }
            ),
            default=dict,
        ),
    }
)

TEMPLATE_KEYS = {"username", "prefix", "uid", "servername"}


def check_template(value, path):
    """A per-user name template may only use the known placeholders."""
    import string as _s

    try:
        fields = list(_s.Formatter().parse(value))
    except ValueError as e:
        raise ConfigError(path, f"is not a valid template ({e})")
    for _, key, _, _ in fields:
        if key is not None and key not in TEMPLATE_KEYS:
            allowed = ", ".join("{%s}" % k for k in sorted(TEMPLATE_KEYS))
            raise ConfigError(path, f"unknown placeholder {{{key}}} (allowed: {allowed})")
    return value


def check_mount_target(target, path):
    """A dataset or scratch mount point: absolute, normalised, not hiding the system or a home."""
    string(ABS_PATH, "an absolute path in the container")(target, path)
    normal = os.path.normpath(target)
    if contract.is_protected(normal):
        raise ConfigError(
            path,
            f'"{target}" would hide part of the container system or a home; use e.g. /datasets/<name> or /scratch',
        )
    return normal


def check_profiles(profiles, path="profiles"):
    """Validate a profile list (the site file's, or a hand-set ``profiles`` trait); fills defaults."""
    profiles = list_of(_profile, min_items=1)(profiles, path)
    names = {}
    for i, profile in enumerate(profiles):
        here = f"{path}[{i}]"
        if profile["name"] in names:
            raise ConfigError(
                f"{here}.name",
                f'duplicate profile name "{profile["name"]}" (also {path}[{names[profile["name"]]}])',
            )
        names[profile["name"]] = i
        if profile["max_gpus"] is None:
            profile["max_gpus"] = profile["gpus"]
        if profile["gpus"] > profile["max_gpus"]:
            raise ConfigError(
                f"{here}.gpus", f"default {profile['gpus']} is above max_gpus {profile['max_gpus']}"
            )
        profile["display_name"] = profile["display_name"] or profile["name"]
    return profiles


def check_datasets(datasets, path="storage.datasets", taken=None):
    """Validate datasets; ``taken`` maps mount targets already used to the key that uses them."""
    datasets = list_of(_dataset)(datasets, path)
    taken = dict(taken or {})
    seen = set()
    for i, ds in enumerate(datasets):
        here = f"{path}[{i}]"
        if ds["name"] in seen:
            raise ConfigError(f"{here}.name", f'duplicate dataset name "{ds["name"]}"')
        seen.add(ds["name"])
        target = check_mount_target(ds["target"], f"{here}.target")
        if target in taken:
            raise ConfigError(f"{here}.target", f'"{target}" is already used by {taken[target]}')
        taken[target] = f"{here}.target"
        ds["target"] = target
    return datasets


def check_gpus(gpus, path="gpus"):
    """Validate the GPU section (the site file's ``gpus``, or the ``gpu_settings`` trait); fills defaults."""
    gpus = _gpus(gpus, path)
    devices = gpus["devices"]
    if devices != "auto":
        for key in ("index", "uuid"):
            seen = {}
            for i, dev in enumerate(devices):
                if dev[key] in seen:
                    raise ConfigError(
                        f"{path}.devices[{i}].{key}",
                        f"{dev[key]!r} is also {path}.devices[{seen[dev[key]]}].{key}",
                    )
                seen[dev[key]] = i
    return gpus


_jobs = mapping(
    {
        "enabled": Field(boolean, default=True),
        "max_gpus": Field(integer(1, 64), default=8),  # per task (one GPU server)
        "max_nodes": Field(integer(1, 64), default=4),
        "max_hours": Field(number(0.01, 30 * 24), default=72),
        "default_hours": Field(number(0.01, 30 * 24), default=24),
        "max_per_user": Field(integer(0, 100), default=4),  # running or waiting
        "keep_days": Field(integer(1, 3650), default=30),  # finished jobs stay listed
    }
)


def check_jobs(jobs, path="jobs"):
    """Validate the jobs section (the site file's ``jobs``, or the ``job_settings`` trait)."""
    jobs = _jobs(jobs, path)
    if jobs["default_hours"] > jobs["max_hours"]:
        raise ConfigError(
            f"{path}.default_hours",
            f"{jobs['default_hours']:g} is over {path}.max_hours ({jobs['max_hours']:g})",
        )
    return jobs


def job_defaults():
    return check_jobs({})


def gpu_defaults():
    """The GPU settings when the site file says nothing (the schema's defaults)."""
    return check_gpus({})


def default(path):
    """The default of a site-file key, e.g. ``default("containers.pids_limit")`` -> 4096, as
    validated (sizes in bytes). Traits and other code take defaults from here, never a copy."""
    if path.startswith("gpus."):
        return default_at(_gpus, path[len("gpus.") :])
    if path.startswith("jobs."):
        return default_at(_jobs, path[len("jobs.") :])
    return default_at(SCHEMA, path)


def _check_tls(site):
    hub = site["hub"]
    tls = hub["tls"]
    if tls and site["cluster"]["mode"] == "swarm":
        raise ConfigError(
            "hub.tls",
            "is not supported in swarm mode yet: terminate TLS at a reverse proxy in front of the hub",
        )
    https = hub["bind_url"].startswith("https://")
    if tls and not https:
        raise ConfigError(
            "hub.bind_url", f'must start with https:// when hub.tls is set, got "{hub["bind_url"]}"'
        )
    if https and not tls:
        raise ConfigError(
            "hub.tls",
            "is required for an https:// bind_url (a certificate and key; or bind http:// behind a TLS reverse proxy)",
        )
    if (
        tls
        and tls["redirect_port"]
        and tls["redirect_port"] == (urlparse(hub["bind_url"]).port or 443)
    ):
        raise ConfigError(
            "hub.tls.redirect_port", "must differ from the HTTPS port of hub.bind_url"
        )


def _check_uids(site):
    users = site["users"]
    if users["uid_source"] == "claim" and site["auth"]["type"] != "oidc":
        raise ConfigError(
            "users.uid_source",
            '"claim" takes uids from the sign-in service of the lab: it needs auth.type: oidc',
        )
    if users["uid_source"] == "map":
        if not users["uid_map"]:
            raise ConfigError("users.uid_map", 'is required when users.uid_source is "map"')
        seen = {}
        for name, entry in users["uid_map"].items():
            if entry["uid"] in seen:
                raise ConfigError(
                    f"users.uid_map.{name}",
                    f"uid {entry['uid']} is also {seen[entry['uid']]}'s: two users would own each "
                    "other's files",
                )
            seen[entry["uid"]] = name
    elif users["uid_map"]:
        raise ConfigError("users.uid_map", 'is used only when users.uid_source is "map"')


def _cross_checks(site):
    _check_tls(site)
    site["profiles"] = check_profiles(site["profiles"])
    names = [p["name"] for p in site["profiles"]]
    if site["default_profile"] is None:
        site["default_profile"] = names[0]
    elif site["default_profile"] not in names:
        raise ConfigError(
            "default_profile",
            f'"{site["default_profile"]}" is not one of the profiles ({", ".join(names)})',
        )

    storage = site["storage"]
    check_template(storage["home"], "storage.home")
    taken = {}
    if storage["scratch"]:
        check_template(storage["scratch"], "storage.scratch")
        storage["scratch_target"] = check_mount_target(
            storage["scratch_target"], "storage.scratch_target"
        )
        taken[storage["scratch_target"]] = "storage.scratch_target"
    storage["datasets"] = check_datasets(storage["datasets"], "storage.datasets", taken)

    auth = site["auth"]
    kind = auth["type"]
    if kind != "native":
        block = auth.get(kind)
        if not block:
            raise ConfigError(f"auth.{kind}", f'is required when auth.type is "{kind}"')
        for key in ("client_id", "client_secret_env", "callback_url"):
            if not block.get(key):
                raise ConfigError(f"auth.{kind}.{key}", "is required")
        if kind == "oidc":
            for key in ("authorize_url", "token_url", "userdata_url"):
                if not block.get(key):
                    raise ConfigError(f"auth.oidc.{key}", "is required")
        for i, name in enumerate(auth["admin_users"]):
            # OAuthenticator lets admin_users in past the allowed groups: an admin must be allowed by name
            if name not in block["allowed_users"]:
                raise ConfigError(
                    f"auth.admin_users[{i}]",
                    f'"{name}" must also be in auth.{kind}.allowed_users: with {kind} logins, admins skip the '
                    "allowed-groups check, so whoever owns that account name at the provider would become admin",
                )

    _check_uids(site)
    hub = site["hub"]
    if hub["network"] is None:
        hub["network"] = hub["name"]
    _swarm_checks(site)
    if site["users"]["sudo"] and not hub["subdomain_host"]:
        raise ConfigError(
            "users.sudo",
            "needs hub.subdomain_host: with sudo a user can change their own Jupyter server, and without a "
            "separate origin per user that server could act as whoever opens its links (set hub.subdomain_host, "
            "e.g. https://hub.lab.example with a wildcard DNS name and certificate, or keep sudo: false)",
        )
    return site


def _swarm_checks(site):
    """What a Swarm needs: a registry, shared storage, and nothing that only lives on one machine."""
    cluster = site["cluster"]
    if cluster["network"] is None:
        cluster["network"] = site["hub"]["name"]
    if cluster["mode"] != "swarm":
        for key in ("registry", "shared_root", "registry_auth"):
            if cluster[key]:
                raise ConfigError(
                    f"cluster.{key}", 'is for cluster.mode: swarm (this site is "single")'
                )
        return
    for key, example in (("registry", "registry.lab.example:5000"), ("shared_root", "/srv/gpulab")):
        if not cluster[key]:
            raise ConfigError(f"cluster.{key}", f"is required in swarm mode (e.g. {example})")
    root = os.path.normpath(cluster["shared_root"]) + "/"
    storage = site["storage"]
    for key in ("home", "scratch"):
        value = storage[key]
        if value and not value.startswith(root):
            raise ConfigError(
                f"storage.{key}",
                f"in swarm mode must be on the shared storage, e.g. {root}{key}/{{username}} (a server may start on any node)",
            )
    if storage["home"] == "{prefix}-home-{username}":
        raise ConfigError(
            "storage.home",
            f"in swarm mode must be a path on the shared storage, e.g. {root}home/{{username}}",
        )
    for i, ds in enumerate(storage["datasets"]):
        if not ds["source"].startswith("/"):
            raise ConfigError(
                f"storage.datasets[{i}].source",
                "in swarm mode must be a path on storage every node mounts (not a volume)",
            )
    if site["ssh"]["enabled"] and site["ssh"]["port_base"]:
        raise ConfigError(
            "ssh.port_base",
            "must be 0 in swarm mode: SSH goes through the hub (a direct port would be on whichever node runs the server)",
        )
    if not os.path.isabs(site["hub"]["state_dir"]):
        raise ConfigError(
            "hub.state_dir",
            "must be an absolute path in swarm mode (the hub runs in a container that mounts it)",
        )


def validate_site(raw):
    """Validate a parsed site file (a dict) and return it with defaults filled in."""
    return _cross_checks(SCHEMA(raw, ""))


def site_path(environ=os.environ):
    return environ.get(contract.SITE_FILE_ENV) or "gpulab.yaml"


def load_site(path=None):
    """Read, parse and validate the site file. Raises ConfigError with a key path."""
    path = path or site_path()
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(
            "(file)",
            f"site file {path} does not exist (set GPULAB_CONFIG or copy gpulab.example.yaml)",
        )
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("(file)", f"{path} is not valid YAML{where}: {getattr(e, 'problem', e)}")
    if raw is None:
        raw = {}
    return validate_site(raw)
