"""The roles and scopes gpulab's pages need, and how they survive an admin's own ``load_roles``."""


def gpulab_roles(admin_users=()):
    """The roles gpulab's pages need. The SSH key API needs its own scope, which a user's full
    tokens carry and server, OAuth and narrower tokens do not; a server's token may only read its
    owner's keys (for sshd in the container) and GPU notices (keeping a warned server is the
    user's own act), and submit its owner's GPU jobs (``gpulab-client job`` in the server). Admins may report GPU readings (a token with only that scope is what
    ``gpulab collect`` runs with)."""
    from .pages.environments import SCOPE_SAVES
    from .pages.gpus import SCOPE_KEEP, SCOPE_NOTICES, SCOPE_READINGS
    from .pages.jobs import SCOPE_JOBS
    from .pages.ssh import SCOPE_KEYS, SCOPE_LOGIN

    return [
        {
            "name": "user",
            "description": "Default permissions for users",
            "scopes": [
                "self",
                f"{SCOPE_KEYS}!user",
                f"{SCOPE_LOGIN}!user",
                f"{SCOPE_NOTICES}!user",
                f"{SCOPE_KEEP}!user",
                f"{SCOPE_SAVES}!user",
                f"{SCOPE_JOBS}!user",
            ],
        },
        {
            "name": "server",
            "description": "Post activity, read its owner's SSH keys and GPU notices",
            "scopes": [
                "users:activity!user",
                "access:servers!server",
                f"{SCOPE_LOGIN}!user",
                f"{SCOPE_NOTICES}!user",
                f"{SCOPE_JOBS}!user",
            ],
        },
        {
            "name": "gpulab-readings",
            "description": "Report GPU readings (gpulab collect)",
            "scopes": [SCOPE_READINGS],
            "users": list(admin_users),
        },
    ]


def merge_roles(configured, required):
    """``configured`` roles (``JupyterHub.load_roles`` as the configuration left it) with every
    role and scope gpulab needs put back: an admin's later ``load_roles = [...]`` would otherwise
    drop them silently. Returns (roles, [what was added, in words])."""
    roles = [dict(r) for r in configured or ()]
    by_name = {r.get("name"): r for r in roles}
    added = []
    for need in required:
        have = by_name.get(need["name"])
        if have is None:
            roles.append(dict(need))
            added.append(f"role {need['name']!r}")
            continue
        missing = [scope for scope in need["scopes"] if scope not in (have.get("scopes") or [])]
        if missing:
            have["scopes"] = list(have.get("scopes") or []) + missing
            added.append(f"{', '.join(missing)} to role {need['name']!r}")
        for key in ("users", "services"):
            extra = [m for m in need.get(key) or () if m not in (have.get(key) or [])]
            if extra:
                have[key] = list(have.get(key) or []) + extra
    return roles, added
