"""The container side of SSH as the spawner sets it up: port, host-key volume, environment.

``SSHSpawnerMixin`` holds the SSH traits of GPUDockerSpawner; the pure helpers
below are unit-tested without Docker.
"""

from docker.types import Mount
from tornado import web
from traitlets import Bool, Int, Unicode
from traitlets.config import LoggingConfigurable

from .store import SSHStore

HOST_KEY_DIR = "/etc/gpulab/ssh-host"  # where the per-user host-key volume is mounted
MAX_PORT = 65535


def host_port(port_base, user_id):
    """A user's stable SSH port on the host: port_base + the hub's (never reused) user id."""
    port = int(port_base) + int(user_id)
    if port > MAX_PORT:
        raise ValueError(f"ssh port {port_base} + user id {user_id} is above {MAX_PORT}: lower ssh.port_base")
    return port


def port_binding(address, port):
    return {"22/tcp": [{"HostIp": address, "HostPort": str(port)}]}


def host_key_mount(volume, labels):
    return Mount(target=HOST_KEY_DIR, source=volume, type="volume", labels=labels)


def ssh_env(*, password_login, activity_interval):
    return {
        "GPULAB_SSH": "1",
        "GPULAB_SSH_PASSWORD_LOGIN": "1" if password_login else "0",
        "GPULAB_SSH_ACTIVITY_INTERVAL": str(activity_interval),
    }


class SSHSpawnerMixin(LoggingConfigurable):  # a HasTraits base, so the traits below are set up
    ssh_enabled = Bool(False, help="Run sshd in every container (keys from the SSH page). Default: off; the site file's ssh.enabled turns it on.").tag(config=True)
    ssh_host_address = Unicode("127.0.0.1", help="Host address the per-user SSH ports are published on, e.g. '0.0.0.0' for the lab network. Default '127.0.0.1'.").tag(config=True)
    ssh_port_base = Int(22000, help="A user's SSH port on the host is ssh_port_base + hub user id, e.g. 22000 + 7 = 22007. 0 publishes no port (only SSH through the hub). Default 22000.").tag(config=True)
    ssh_password_login = Bool(False, help="Allow password logins over SSH (the SSH page's admin setting overrides this). Default: off, keys only.").tag(config=True)
    ssh_activity_interval = Int(60, help="Seconds between activity reports to the hub while SSH sessions are open, e.g. 60. Default 60.").tag(config=True)
    ssh_host_key_volume = Unicode("{prefix}-sshhost-{username}", help="Per-user Docker volume keeping the container's SSH host keys across restarts. Default '{prefix}-sshhost-{username}'.").tag(config=True)
    ssh_store_path = Unicode("", help="SQLite file of SSH keys and admin SSH settings, e.g. '/srv/gpulab/gpulab-ssh.sqlite'. Default: none (admin page settings are ignored).").tag(config=True)

    def ssh_policy(self):
        """(password_login, sudo) as the admin set them on the SSH page, else as configured."""
        if not self.ssh_store_path:
            return self.ssh_password_login, self.allow_sudo
        return SSHStore(self.ssh_store_path).policy(self.ssh_password_login, self.allow_sudo)

    def ssh_host_port(self):
        try:
            return host_port(self.ssh_port_base, self.user.id)
        except ValueError as e:
            raise web.HTTPError(500, str(e))

    def ssh_environment(self, password_login):
        """sshd settings for the start hook; nothing when SSH is off."""
        if not self.ssh_enabled:
            return {}
        return ssh_env(password_login=password_login, activity_interval=self.ssh_activity_interval)

    def ssh_create_kwargs(self, kwargs, volume_labels):
        if not self.ssh_enabled:
            return kwargs
        host = kwargs["host_config"]
        host["Mounts"] = list(host.get("Mounts") or []) + [host_key_mount(self._render_source(self.ssh_host_key_volume), volume_labels)]
        if self.ssh_port_base:
            kwargs["ports"] = {**(kwargs.get("ports") or {}), "22/tcp": None}
            host["PortBindings"] = {**(host.get("PortBindings") or {}), **port_binding(self.ssh_host_address, self.ssh_host_port())}
        return kwargs
