"""Turn a validated site file into JupyterHub configuration: the one place it is wired.

``jupyterhub_config.py`` calls :func:`configure_or_exit`; any plain traitlet set after that
call in the same file still overrides what the site file said (see the precedence rule in
:mod:`gpulab.core.spec`). Configuration only sets: nothing is created here (no network, file or
database); the hub's startup (:mod:`.app`) builds the deployment and prepares the host. The
backend (:func:`gpulab.backends.select`) names the spawner and adds its own settings.
"""

import os
import shutil
import sys
from urllib.parse import urlparse

from ..backends import select
from ..core.site import facts
from ..core.site.model import load_site, site_path
from ..core.site.schema import ConfigError
from .pages.base import add_pages

HSTS_SECONDS = 365 * 86400
CULLER_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "idle_culler_config.py")


def _auth(c, auth, environ, users):
    c.Authenticator.admin_users = set(auth["admin_users"])
    kind = auth["type"]
    if kind == "native":
        import nativeauthenticator

        # sign-up + admin approval; admins are created with `gpulab admin create`, never by sign-up
        c.JupyterHub.authenticator_class = "gpulab.hub.auth.GPULabNativeAuthenticator"
        c.NativeAuthenticator.open_signup = auth["open_signup"]
        # NativeAuthenticator itself refuses accounts an admin has not approved (unless
        # open_signup); JupyterHub's own allowlist would otherwise let only admins in
        c.NativeAuthenticator.allow_all = True
        c.NativeAuthenticator.minimum_password_length = 10
        c.NativeAuthenticator.check_common_password = True
        c.NativeAuthenticator.allowed_failed_logins = auth["failed_logins"]
        c.NativeAuthenticator.seconds_before_next_try = auth["lockout_seconds"]
        c.JupyterHub.template_paths = [
            os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")
        ]
        from .auth import signups_waiting

        add_pages(c, template_vars={"gpulab_signups_waiting": signups_waiting})
        return
    block = auth[kind]
    secret = environ.get(block["client_secret_env"])
    if not secret:
        raise ConfigError(
            f"auth.{kind}.client_secret_env",
            f"environment variable {block['client_secret_env']} is not set",
        )
    cls = {
        "github": "oauthenticator.github.GitHubOAuthenticator",
        "gitlab": "oauthenticator.gitlab.GitLabOAuthenticator",
        "oidc": "oauthenticator.generic.GenericOAuthenticator",
    }[kind]
    section = c[cls.rsplit(".", 1)[1]]  # the subclass below reads its parent's section
    if kind == "oidc":
        cls = "gpulab.hub.oidc.GPULabOIDCAuthenticator"  # a clear page when the provider is down
    c.JupyterHub.authenticator_class = cls
    section.client_id = block["client_id"]
    section.client_secret = secret
    section.oauth_callback_url = block["callback_url"]
    if block["allowed_users"]:
        section.allowed_users = set(block["allowed_users"])
    if kind == "github" and block["allowed_groups"]:
        section.allowed_organizations = set(block["allowed_groups"])
    elif kind == "gitlab":
        if block.get("url"):
            section.gitlab_url = block["url"]
        if block["allowed_groups"]:
            section.allowed_gitlab_groups = set(block["allowed_groups"])
    elif kind == "oidc":
        section.authorize_url = block["authorize_url"]
        section.token_url = block["token_url"]
        section.userdata_url = block["userdata_url"]
        section.username_claim = block["username_claim"]
        if (
            users["uid_source"] == "claim"
        ):  # kept with the user at each login (JupyterHub's user_info)
            c.GPULabOIDCAuthenticator.uid_claim = users["uid_claim"]
            c.GPULabOIDCAuthenticator.gid_claim = users["gid_claim"]
        section.scope = block["scope"]
        if block["allowed_groups"] or block["admin_groups"]:
            section.manage_groups = True  # the provider's groups become the hub's groups
            section.allowed_groups = set(block["allowed_groups"])
            section.admin_groups = set(block["admin_groups"])
    if not block["allowed_users"] and not block["allowed_groups"]:
        raise ConfigError(
            f"auth.{kind}.allowed_users",
            "list the users or groups allowed in (an empty allowlist would let anyone with an account in)",
        )


def _spawner(s, site):
    """The settings both backends' spawners share, from the site file (``s``: its config section)."""
    hub, storage, users, gpus = site["hub"], site["storage"], site["users"], site["gpus"]
    state = facts.state_dir(site)
    s.deployment = hub["name"]
    s.public_url = facts.public_url(site)
    s.state_dir = state
    s.boot_dir = os.path.join(state, "boot")
    s.profiles = site["profiles"]
    s.default_profile = site["default_profile"]
    s.home_source = storage["home"]
    s.datasets = storage["datasets"]
    if storage["scratch"]:
        s.scratch_source = storage["scratch"]
        s.scratch_target = storage["scratch_target"]
    s.home_backups_dir = facts.home_backups_dir(site)
    s.home_backups_per_user = storage["backups_per_user"]
    s.home_backups_max_size = storage["backups_max_size"]
    s.home_backups_keep_days = storage["backups_keep_days"]
    s.archive_dir = facts.archive_dir(site)
    s.allow_sudo = users["sudo"]
    s.uid_base = users["uid_base"]
    s.user_gid = users["gid"]
    s.uid_source = users["uid_source"]
    s.uid_claim = users["uid_claim"]
    s.uid_map = users["uid_map"]
    s.tf_memory_growth = site["hooks"]["tf_memory_growth"]
    s.jax_preallocate = site["hooks"]["jax_preallocate"]
    s.tensorboard_logdir = site["hooks"]["tensorboard_logdir"]
    s.network_name = hub["network"]
    s.use_internal_ip = True
    s.remove = True  # the container is disposable; the home volume is not
    s.docker_threads = hub["docker_threads"]
    s.concurrent_starts = hub["concurrent_starts"]
    s.pids_limit = site["containers"]["pids_limit"]
    s.log_max_size = site["containers"]["log_max_size"]
    s.log_max_files = site["containers"]["log_max_files"]
    s.gpu_settings = gpus
    s.job_settings = site["jobs"]
    s.saves_enabled = site["saves"]["enabled"]
    s.saves_max_per_user = site["saves"]["max_per_user"]
    s.saves_max_size = site["saves"]["max_size"]
    # a spawn may wait in the GPU queue before its container starts
    s.start_timeout = hub["start_timeout"] + (gpus["wait_timeout"] if gpus["wait"] else 0)
    s.http_timeout = hub["start_timeout"]
    s.debug = False


def configure_ssh(c, site, state_dir):
    """SSH into the users' containers: the spawner's SSH settings and the SSH page and API."""
    ssh = site["ssh"]
    s = c[select(site).spawner_section]
    s.ssh_enabled = ssh["enabled"]
    if not ssh["enabled"]:
        return
    from .pages import ssh as pages

    add_pages(
        c,
        pages.handlers(),
        {"gpulab_ssh": True, "gpulab_native_auth": site["auth"]["type"] == "native"},
    )
    s.ssh_store_path = facts.ssh_store_path(state_dir)
    s.ssh_password_login = ssh["password_login"]
    s.ssh_host_address = ssh["host_address"]
    s.ssh_port_base = ssh["port_base"]
    s.ssh_public_host = facts.ssh_public_host(site)
    s.ssh_activity_interval = ssh["activity_interval"]
    s.ssh_tcp_forwarding = ssh["tcp_forwarding"]
    s.ssh_x11_forwarding = ssh["x11_forwarding"]


def _pages(c):
    """gpulab's GPU, environments and home-backup pages and APIs, the top bar's links and the
    reclaim banner on every page."""
    from .gpus.service import banner
    from .pages import client, environments, gpus, homes, jobs

    handlers = [
        *gpus.handlers(),
        *environments.handlers(),
        *homes.handlers(),
        *client.handlers(),
        *jobs.handlers(),
    ]
    add_pages(
        c,
        handlers,
        {
            "gpulab_gpus": True,
            "gpulab_gpu_notices": banner,
            "gpulab_saves": True,
            "gpulab_jobs": True,
        },
    )


def _roles(c, idle_timeout, admin_users=(), reclaim=False):
    """gpulab's scopes and roles (:func:`gpulab_roles`), and the idle culler's."""
    from .pages.environments import SCOPES as SAVE_SCOPES
    from .pages.gpus import SCOPES as GPU_SCOPES
    from .pages.jobs import SCOPES as JOB_SCOPES
    from .pages.ssh import SCOPES
    from .roles import gpulab_roles

    c.JupyterHub.custom_scopes = {**SCOPES, **GPU_SCOPES, **SAVE_SCOPES, **JOB_SCOPES}
    roles = gpulab_roles(admin_users)
    if idle_timeout:
        # servers holding GPUs are left to the GPU reclaim policy when it is on (their browser
        # may be closed while they train); the culler needs their state to know
        command = [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={idle_timeout}"]
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        if reclaim:
            command.append(f"--config-file={CULLER_CONFIG}")
            scopes.append("admin:server_state")
        c.JupyterHub.services = [{"name": "idle-culler", "command": command}]
        roles.append({"name": "idle-culler", "scopes": scopes, "services": ["idle-culler"]})
    c.JupyterHub.load_roles = roles


def proxy_command():
    """configurable-http-proxy: on PATH, else next to this Python (make up installs it into .venv/bin)."""
    return shutil.which("configurable-http-proxy") or os.path.join(
        os.path.dirname(sys.executable), "configurable-http-proxy"
    )


def missing_host_paths(site):
    """(key path, host path) of every dataset host directory that does not exist."""
    return [
        (f"storage.datasets[{i}].source", ds["source"])
        for i, ds in enumerate(site["storage"]["datasets"])
        if ds["source"].startswith("/") and not os.path.isdir(ds["source"])
    ]


def configure(c, site=None, environ=os.environ):
    """Configure the hub from the site file. Raises ConfigError. Creates nothing."""
    site = site or load_site(site_path(environ))
    for key, path in missing_host_paths(site):  # else every spawn would fail at Docker
        raise ConfigError(key, f"host path {path} does not exist (create it, or fix the path)")
    hub = site["hub"]
    state = facts.state_dir(site)
    backend = select(site)

    c.JupyterHub.bind_url = hub["bind_url"]
    if hub["subdomain_host"]:
        # every user's server on a host name of its own (alice.hub.lab.example): another origin
        # than the hub and than every other user
        c.JupyterHub.subdomain_host = hub["subdomain_host"]
    c.JupyterHub.db_url = facts.db_url(site)
    c.JupyterHub.cookie_secret_file = os.path.join(state, facts.COOKIE_SECRET)
    c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub['proxy_api_port']}"
    c.ConfigurableHTTPProxy.command = [proxy_command()]
    _tls(c, hub)
    c.JupyterHub.cleanup_servers = False  # user containers outlive a hub restart

    _auth(c, site["auth"], environ, site["users"])
    c.JupyterHub.spawner_class = backend.spawner_class
    s = c[backend.spawner_section]
    _spawner(s, site)
    for name, value in backend.spawner_traits(site).items():
        setattr(s, name, value)
    for section, values in backend.hub_traits(site).items():
        for name, value in values.items():
            setattr(c[section], name, value)
    configure_ssh(c, site, state)  # after _auth: adds to its template_paths
    _pages(c)
    _roles(c, hub["idle_timeout"], site["auth"]["admin_users"], site["gpus"]["reclaim"]["enabled"])
    return site


def _tls(c, hub):
    """HTTPS on the public port (the proxy serves it); optionally a plain-HTTP port that redirects."""
    tls = hub["tls"]
    if not tls:
        return
    for key in ("cert", "key"):
        if not os.path.isfile(tls[key]):
            raise ConfigError(f"hub.tls.{key}", f"{tls[key]} does not exist or is not a file")
    c.JupyterHub.ssl_cert = tls["cert"]
    c.JupyterHub.ssl_key = tls["key"]
    # browsers that once came by HTTPS never use plain HTTP here again (HSTS), also when a plain
    # port redirects: a redirect alone can be intercepted before it happens
    settings = dict(c.JupyterHub.tornado_settings) if "tornado_settings" in c.JupyterHub else {}
    headers = dict(settings.get("headers") or {})
    headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
    settings["headers"] = headers
    c.JupyterHub.tornado_settings = settings
    if tls["redirect_port"]:
        https_port = urlparse(hub["bind_url"]).port or 443
        c.ConfigurableHTTPProxy.command = [
            proxy_command(),
            "--redirect-port",
            str(tls["redirect_port"]),
            "--redirect-to",
            str(https_port),
        ]


def configure_or_exit(c, environ=os.environ):
    """For jupyterhub_config.py: print one clear line and stop startup on a bad site file."""
    try:
        site = configure(c, environ=environ)
    except ConfigError as e:
        print(f"gpulab: invalid site file {site_path(environ)}: {e}", file=sys.stderr)
        sys.exit(2)
    from .app import started_by_gpulab

    if not started_by_gpulab():
        print(
            "gpulab: start the hub with `gpulab up` (or `python -m gpulab.hub.app -f jupyterhub_config.py`), "
            "not plain `jupyterhub`: gpulab prepares the host (state directory, Docker network) and checks "
            "the spawner settings before JupyterHub starts",
            file=sys.stderr,
        )
        sys.exit(2)
    return site
