"""Turn a validated site file into JupyterHub configuration.

``jupyterhub_config.py`` calls :func:`configure_or_exit`; any plain traitlet set after that
call in the same file still overrides what the site file said (see the precedence rule in
:mod:`.spec`). Configuration only sets: nothing is created here (no network, file or database);
the hub's startup (:mod:`.app`) prepares the host.
"""

import os
import shutil
import sys
from urllib.parse import urlparse

from . import network
from .hubpages import add_pages
from .schema import SiteConfigError
from .siteconfig import load_site, site_path
from .ssh.hubsetup import configure_ssh


def _auth(c, auth, environ):
    c.Authenticator.admin_users = set(auth["admin_users"])
    kind = auth["type"]
    if kind == "native":
        import nativeauthenticator

        # sign-up + admin approval; admins are created with `gpulab admin create`, never by sign-up
        c.JupyterHub.authenticator_class = "gpulab.auth.GPULabNativeAuthenticator"
        c.NativeAuthenticator.open_signup = auth["open_signup"]
        # NativeAuthenticator itself refuses accounts an admin has not approved (unless
        # open_signup); JupyterHub's own allowlist would otherwise let only admins in
        c.NativeAuthenticator.allow_all = True
        c.NativeAuthenticator.minimum_password_length = 10
        c.NativeAuthenticator.check_common_password = True
        c.NativeAuthenticator.allowed_failed_logins = auth["failed_logins"]
        c.NativeAuthenticator.seconds_before_next_try = auth["lockout_seconds"]
        c.JupyterHub.template_paths = [os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")]
        return
    block = auth[kind]
    secret = environ.get(block["client_secret_env"])
    if not secret:
        raise SiteConfigError(f"auth.{kind}.client_secret_env", f"environment variable {block['client_secret_env']} is not set")
    cls = {
        "github": "oauthenticator.github.GitHubOAuthenticator",
        "gitlab": "oauthenticator.gitlab.GitLabOAuthenticator",
        "oidc": "oauthenticator.generic.GenericOAuthenticator",
    }[kind]
    section = c[cls.rsplit(".", 1)[1]]  # the subclass below reads its parent's section
    if kind == "oidc":
        cls = "gpulab.oidc.GPULabOIDCAuthenticator"  # a clear page when the provider is down
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
        section.scope = block["scope"]
        if block["allowed_groups"] or block["admin_groups"]:
            section.manage_groups = True  # the provider's groups become the hub's groups
            section.allowed_groups = set(block["allowed_groups"])
            section.admin_groups = set(block["admin_groups"])
    if not block["allowed_users"] and not block["allowed_groups"]:
        raise SiteConfigError(
            f"auth.{kind}.allowed_users", "list the users or groups allowed in (an empty allowlist would let anyone with an account in)"
        )


def _spawner(c, site, gateway):
    hub, storage, users = site["hub"], site["storage"], site["users"]
    c.JupyterHub.spawner_class = "gpulab.spawner.GPUDockerSpawner"
    s = c.GPUDockerSpawner
    s.deployment = hub["name"]
    s.profiles = site["profiles"]
    s.default_profile = site["default_profile"]
    s.home_source = storage["home"]
    s.datasets = storage["datasets"]
    if storage["scratch"]:
        s.scratch_source = storage["scratch"]
        s.scratch_target = storage["scratch_target"]
    s.allow_sudo = users["sudo"]
    s.uid_base = users["uid_base"]
    s.user_gid = users["gid"]
    s.tf_memory_growth = site["hooks"]["tf_memory_growth"]
    s.jax_preallocate = site["hooks"]["jax_preallocate"]
    s.tensorboard_logdir = site["hooks"]["tensorboard_logdir"]
    s.network_name = hub["network"]
    s.use_internal_ip = True
    s.remove = True  # the container is disposable; the home volume is not
    s.pull_policy = "ifnotpresent"
    s.docker_threads = hub["docker_threads"]
    s.concurrent_starts = hub["concurrent_starts"]
    s.pids_limit = site["containers"]["pids_limit"]
    s.log_max_size = site["containers"]["log_max_size"]
    s.log_max_files = site["containers"]["log_max_files"]
    s.gpu_settings = site["gpus"]
    # a spawn may wait in the GPU queue before its container starts
    s.start_timeout = hub["start_timeout"] + (site["gpus"]["wait_timeout"] if site["gpus"]["wait"] else 0)
    s.http_timeout = hub["start_timeout"]
    s.debug = False


def _roles(c, idle_timeout, admin_users=(), reclaim=False):
    """gpulab's scopes and roles. The SSH key API needs its own scope, which a user's full tokens
    carry and server, OAuth and narrower tokens do not; a server's token may only read its owner's
    keys (for sshd in the container) and GPU notices. Admins may report GPU readings (a token
    with only that scope is what ``gpulab collect`` runs with)."""
    from .gpus.pages import SCOPE_NOTICES, SCOPE_READINGS
    from .gpus.pages import SCOPES as GPU_SCOPES
    from .saves_api import SCOPE_SAVES
    from .saves_api import SCOPES as SAVE_SCOPES
    from .ssh.service import SCOPE_KEYS, SCOPE_LOGIN, SCOPES

    c.JupyterHub.custom_scopes = {**SCOPES, **GPU_SCOPES, **SAVE_SCOPES}
    roles = [
        {
            "name": "user",
            "description": "Default permissions for users",
            "scopes": ["self", f"{SCOPE_KEYS}!user", f"{SCOPE_LOGIN}!user", f"{SCOPE_NOTICES}!user", f"{SCOPE_SAVES}!user"],
        },
        {
            "name": "server",
            "description": "Post activity, read its owner's SSH keys and GPU notices",
            "scopes": ["users:activity!user", "access:servers!server", f"{SCOPE_LOGIN}!user", f"{SCOPE_NOTICES}!user"],
        },
        {"name": "gpulab-readings", "description": "Report GPU readings (gpulab collect)", "scopes": [SCOPE_READINGS], "users": list(admin_users)},
    ]
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


CULLER_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "idle_culler_config.py")


def proxy_command():
    """configurable-http-proxy: on PATH, else next to this Python (make up installs it into .venv/bin)."""
    return shutil.which("configurable-http-proxy") or os.path.join(os.path.dirname(sys.executable), "configurable-http-proxy")


def missing_host_paths(site):
    """(key path, host path) of every dataset host directory that does not exist."""
    return [
        (f"storage.datasets[{i}].source", ds["source"])
        for i, ds in enumerate(site["storage"]["datasets"])
        if ds["source"].startswith("/") and not os.path.isdir(ds["source"])
    ]


def configure(c, site=None, environ=os.environ):
    """Configure the hub from the site file. Raises SiteConfigError. Creates nothing."""
    site = site or load_site(site_path(environ))
    for key, path in missing_host_paths(site):  # else every spawn would fail at Docker
        raise SiteConfigError(key, f"host path {path} does not exist (create it, or fix the path)")
    hub = site["hub"]
    state = os.path.abspath(hub["state_dir"])
    c.GPULabHub.site = site  # what the hub's startup prepares (state dir, network, SSH store)

    c.JupyterHub.bind_url = hub["bind_url"]
    if hub["subdomain_host"]:
        # every user's server on a host name of its own (alice.hub.lab.example): another origin
        # than the hub and than every other user
        c.JupyterHub.subdomain_host = hub["subdomain_host"]
    c.JupyterHub.db_url = db_url(site)
    c.JupyterHub.cookie_secret_file = os.path.join(state, "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub['proxy_api_port']}"
    c.ConfigurableHTTPProxy.command = [proxy_command()]
    _tls(c, hub)
    c.JupyterHub.cleanup_servers = False  # user containers outlive a hub restart

    gateway = network.gateway_of(hub["subnet"])  # the network itself is made at startup
    c.JupyterHub.hub_bind_url = f"http://{gateway}:{hub['api_port']}"
    c.JupyterHub.hub_connect_url = f"http://{gateway}:{hub['api_port']}"

    from .gpus.api import handlers as gpu_handlers

    swarm = site["cluster"]["mode"] == "swarm"
    c.JupyterHub.extra_handlers = gpu_handlers(hub["name"], site["gpus"], swarm=swarm)
    _auth(c, site["auth"], environ)
    _spawner(c, site, gateway)
    if swarm:
        _swarm(c, site)
    configure_ssh(c, site, state)  # after _auth: adds to its template_paths
    _gpu_pages(c, site)
    _saves(c, site)
    _roles(c, hub["idle_timeout"], site["auth"]["admin_users"], site["gpus"]["reclaim"]["enabled"])
    return site


def _saves(c, site):
    """Saved environments: their page and API (:mod:`.saves_api`)."""
    from .saves import STORE_FILE
    from .saves_api import handlers

    swarm = site["cluster"]["mode"] == "swarm"
    settings = {
        "deployment": site["hub"]["name"],
        "swarm": swarm,
        "site": site,
        "store": os.path.join(os.path.abspath(site["hub"]["state_dir"]), STORE_FILE),
        "registry": site["cluster"]["registry"] or "",
        "hub_image": "",
        **site["saves"],
    }
    if swarm:
        from .swarm.hub import hub_image

        settings["hub_image"] = hub_image(site)
        c.GPUSwarmSpawner.saves_settings = {k: v for k, v in settings.items() if k != "site"}
    else:
        c.GPUDockerSpawner.saves_settings = {k: v for k, v in settings.items() if k != "site"}
    add_pages(c, handlers(settings), {"gpulab_saves": True})


def _gpu_pages(c, site):
    """The GPU page, the reclaim banner on every hub page, the reclaim and readings APIs."""
    from .gpus.pages import handlers
    from .gpus.service import banner_for

    add_pages(c, handlers(site["hub"]["name"]), {"gpulab_gpus": True, "gpulab_gpu_notices": banner_for(site["hub"]["name"])})


def _tls(c, hub):
    """HTTPS on the public port (the proxy serves it); optionally a plain-HTTP port that redirects."""
    tls = hub["tls"]
    if not tls:
        return
    for key in ("cert", "key"):
        if not os.path.isfile(tls[key]):
            raise SiteConfigError(f"hub.tls.{key}", f"{tls[key]} does not exist or is not a file")
    c.JupyterHub.ssl_cert = tls["cert"]
    c.JupyterHub.ssl_key = tls["key"]
    if tls["redirect_port"]:
        https_port = urlparse(hub["bind_url"]).port or 443
        c.ConfigurableHTTPProxy.command = [proxy_command(), "--redirect-port", str(tls["redirect_port"]), "--redirect-to", str(https_port)]


def hub_container_name(site):
    """The hub's container on a Swarm manager (its name is also its address on the overlays)."""
    return f"{site['hub']['name']}-hub"


def _swarm(c, site):
    """One hub for a Swarm of GPU servers: it runs in a container on a manager node, on the
    overlay networks; user servers are Swarm services (:mod:`.swarm.spawner`)."""
    hub, cluster = site["hub"], site["cluster"]
    container = hub_container_name(site)
    u = urlparse(hub["bind_url"])
    c.JupyterHub.bind_url = f"{u.scheme}://0.0.0.0:{public_host_port(hub['bind_url'])[1]}{u.path or '/'}"  # published by the container
    c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{hub['api_port']}"
    c.JupyterHub.hub_connect_url = f"http://{container}:{hub['api_port']}"
    # the proxy runs and dies with the hub's container: its pid file is the container's own, not
    # the state directory's (a new container would take an old pid for a running proxy)
    c.ConfigurableHTTPProxy.pid_file = "/run/gpulab-proxy.pid"
    c.JupyterHub.spawner_class = "gpulab.swarm.spawner.GPUSwarmSpawner"
    s = c.GPUSwarmSpawner
    s.network_name = cluster["network"]
    s.registry = cluster["registry"]
    s.placement_constraints = cluster["constraints"]
    s.user_networks = cluster["user_networks"]
    s.network_encrypted = cluster["encrypted"]
    s.hub_container = container
    s.pull_policy = "skip"
    s.ssh_host_key_volume = os.path.join(cluster["shared_root"], "ssh-host", "{username}")


def configure_or_exit(c, environ=os.environ):
    """For jupyterhub_config.py: print one clear line and stop startup on a bad site file."""
    try:
        site = configure(c, environ=environ)
    except SiteConfigError as e:
        print(f"gpulab: invalid site file {site_path(environ)}: {e}", file=sys.stderr)
        sys.exit(2)
    from .app import started_by_gpulab

    if not started_by_gpulab():
        print(
            "gpulab: start the hub with `gpulab up` (or `python -m gpulab.app -f jupyterhub_config.py`), "
            "not plain `jupyterhub`: gpulab prepares the host (state directory, Docker network) and checks "
            "the spawner settings before JupyterHub starts",
            file=sys.stderr,
        )
        sys.exit(2)
    return site


def public_url(site):
    """Where users open the hub."""
    return site["hub"]["subdomain_host"] or site["hub"]["bind_url"]


def db_url(site):
    """The hub database URL, a relative SQLite path resolved in the state directory."""
    hub = site["hub"]
    url = hub["db_url"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + os.path.join(os.path.abspath(hub["state_dir"]), url[len("sqlite:///") :])
    return url


def public_host_port(bind_url):
    u = urlparse(bind_url)
    return u.hostname, u.port or (443 if u.scheme == "https" else 80)
