"""The SSH access page and its API, served by the hub itself (``/hub/ssh``, ``/hub/api/gpulab/ssh/...``).

* ``/hub/ssh``: a logged-in user adds/removes public keys, sets a container password
  (only a bcrypt hash is stored) and copies ``~/.ssh/config`` entries; admins set the
  SSH policy (password logins, sudo).
* ``/hub/api/gpulab/ssh/keys``: the same for scripts, with a token that has the scope
  ``custom:gpulab:ssh-keys`` for the user (the user's own full tokens have it; server, OAuth
  and narrower tokens do not: a key grants permanent SSH access, so only a token meant for it may
  add one).
* ``/hub/api/gpulab/ssh/authorized_keys`` and ``.../account``: read by the user's own
  container (sshd's AuthorizedKeysCommand, the start hook) with the server's API token, which
  has ``custom:gpulab:ssh-login`` for its owner. They only ever answer with the keys and
  password of the token's owner.
"""

import json

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.user import User
from tornado import web

from ...core.identity import unix_name
from ...core.ssh import keys as sshkeys
from ...core.ssh.clientconfig import ssh_config
from ...core.ssh.ports import host_port
from ..sshstore import SSHStore, StoreError
from .base import lab_of
from .client import install_commands

MAX_FORM_BYTES = 32 * 1024
SCOPE_KEYS = "custom:gpulab:ssh-keys"  # add, list, remove one's SSH keys
SCOPE_LOGIN = "custom:gpulab:ssh-login"  # read one's keys and password hash (sshd in the container)
#: what gpulab-client does with a token: find and start the user's server, reach its SSH through
#: the hub, save environments and back up the home, run GPU jobs; nothing of other users, no admin
#: rights
CLIENT_SCOPES = (
    "read:users!user",
    "read:servers!user",
    "servers!user",
    "access:servers!user",
    "custom:gpulab:saves!user",
    "custom:gpulab:jobs!user",
)
CLIENT_TOKEN_DAYS = 90
SCOPES = {
    SCOPE_KEYS: {
        "description": "Add and remove your SSH keys (a key is permanent SSH access to your container)."
    },
    SCOPE_LOGIN: {
        "description": "Read your SSH public keys and container password hash (sshd in your own container)."
    },
}


class _SSHMixin:
    @property
    def store(self):
        return SSHStore(lab_of(self).ssh_store_path)

    @property
    def ssh_settings(self):
        lab = lab_of(self)
        return {
            "password_login": lab.ssh_password_login,
            "sudo": lab.allow_sudo,
            "port_base": lab.ssh_port_base,
            "public_host": lab.ssh_public_host,
            "hub_url": lab.public_url.rstrip("/"),
            "subdomains": bool(self.settings.get("subdomain_host")),
        }

    def policy(self):
        return self.store.policy(self.ssh_settings["password_login"], self.ssh_settings["sudo"])


class SSHPageHandler(_SSHMixin, BaseHandler):
    async def page(self, user, messages=(), status=200, client_token=None):
        s = self.ssh_settings
        password_login, sudo = self.policy()
        port = host_port(s["port_base"], user.id) if s["port_base"] else None
        config, alias = ssh_config(
            username=user.name,
            login=unix_name(user.name),
            hub_url=s["hub_url"],
            direct_host=s["public_host"],
            direct_port=port,
        )
        self.set_status(status)
        html = await self.render_template(
            "ssh.html",
            messages=list(messages),
            keys=self.store.keys(user.name),
            has_password=bool(self.store.password_hash(user.name)),
            password_login=password_login,
            sudo=sudo,
            login=unix_name(user.name),
            ssh_config=config,
            alias=alias,
            direct_port=port,
            max_key=sshkeys.MAX_KEY_LINE,
            client=install_commands(s["hub_url"]),
            client_token=client_token,
            client_scopes=CLIENT_SCOPES,
            client_token_days=CLIENT_TOKEN_DAYS,
        )
        self.finish(html)

    @web.authenticated
    async def get(self):
        await self.page(self.current_user)

    @web.authenticated
    async def post(self):
        user = self.current_user
        if len(self.request.body) > MAX_FORM_BYTES:
            return await self.page(
                user,
                [
                    (
                        "error",
                        f"The form is larger than {MAX_FORM_BYTES // 1024} KiB: nothing was changed.",
                    )
                ],
                400,
            )
        action = self.get_body_argument("action", "")
        if action == "client_token":
            token = user.new_api_token(
                note="gpulab-client (from the SSH page)",
                expires_in=CLIENT_TOKEN_DAYS * 86400,
                scopes=list(CLIENT_SCOPES),
            )
            return await self.page(
                user,
                [
                    (
                        "ok",
                        f"A token for gpulab-client, valid {CLIENT_TOKEN_DAYS} days. It is shown only now.",
                    )
                ],
                client_token=token,
            )
        try:
            message = self.apply(user, action)
        except (sshkeys.InvalidInput, StoreError) as e:
            return await self.page(user, [("error", f"Not saved: {e}.")], 400)
        await self.page(user, [("ok", message)])

    def apply(self, user, action):
        name = user.name
        if action == "add_key":
            key = sshkeys.parse_public_key(self.get_body_argument("key", "", strip=False))
            self.store.add_key(name, key)
            return f"Added {key.type} key {key.fingerprint}."
        if action == "remove_key":
            fingerprint = self.get_body_argument("fingerprint", "")
            if not self.store.remove_key(name, fingerprint):
                raise StoreError("no such key")
            return f"Removed key {fingerprint}."
        if action == "set_password":
            self.store.set_password_hash(
                name, sshkeys.hash_password(self.get_body_argument("password", "", strip=False))
            )
            return "Password set; it applies when your server next starts."
        if action == "clear_password":
            self.store.clear_password(name)
            return "Password removed; it applies when your server next starts."
        if action == "admin_settings":
            if not user.admin:
                raise web.HTTPError(403, "only admins can change the SSH policy")
            wanted = {
                setting: self.get_body_argument(setting, "") == "1"
                for setting in ("password_login", "sudo")
            }
            if wanted["sudo"] and not self.ssh_settings["subdomains"]:
                raise sshkeys.InvalidInput(
                    "sudo needs per-user subdomains (hub.subdomain_host in the site file): with sudo a user can change "
                    "their own server, which must then not share the hub's origin"
                )
            for setting, value in wanted.items():
                self.store.set_setting(setting, value)
            return "SSH policy saved; it applies to servers at their next start."
        raise sshkeys.InvalidInput(f"unknown action {action[:40]!r}")


class _APIBase(_SSHMixin, APIHandler):
    def owner(self, scope):
        """The user who owns the token, if it carries ``scope`` for them; else 403."""
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "a user's token is required")
        if not self.has_scope(f"{scope}!user={user.name}"):
            raise web.HTTPError(
                403, f"this token lacks the scope {scope} (create a token on the Token page)"
            )
        return user


class KeysAPIHandler(_APIBase):
    def get(self):
        user = self.owner(SCOPE_KEYS)
        self.write(
            json.dumps(
                [
                    {
                        "type": k.type,
                        "bits": k.bits,
                        "fingerprint": k.fingerprint,
                        "comment": k.comment,
                    }
                    for k in self.store.keys(user.name)
                ]
            )
        )

    def post(self):
        user = self.owner(SCOPE_KEYS)
        if len(self.request.body) > MAX_FORM_BYTES:
            raise web.HTTPError(400, f"request larger than {MAX_FORM_BYTES} bytes")
        try:
            key = sshkeys.parse_public_key(json.loads(self.request.body or b"{}").get("key"))
            self.store.add_key(user.name, key)
        except (ValueError, AttributeError) as e:  # InvalidInput, StoreError, bad JSON
            raise web.HTTPError(400, f"key not added: {e}")
        except RecursionError:  # JSON nested too deep to parse
            raise web.HTTPError(400, "key not added: the body is not a JSON object")
        self.set_status(201)
        self.write(json.dumps({"fingerprint": key.fingerprint}))

    def delete(self):
        user = self.owner(SCOPE_KEYS)
        if not self.store.remove_key(user.name, self.get_argument("fingerprint", "")):
            raise web.HTTPError(404, "no such key")
        self.set_status(204)


class AuthorizedKeysHandler(_APIBase):
    def get(self):
        user = self.owner(SCOPE_LOGIN)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.write("".join(k.line() + "\n" for k in self.store.keys(user.name)))


class AccountHandler(_APIBase):
    def get(self):
        user = self.owner(SCOPE_LOGIN)
        password_login, _ = self.policy()
        self.write(
            json.dumps(
                {
                    "login": unix_name(user.name),
                    "password_login": password_login,
                    "password_hash": self.store.password_hash(user.name)
                    if password_login
                    else None,
                }
            )
        )


def handlers():
    """For c.JupyterHub.extra_handlers (the hub prefixes them with /hub/)."""
    return [
        (r"/ssh", SSHPageHandler),
        (r"/api/gpulab/ssh/keys", KeysAPIHandler),
        (r"/api/gpulab/ssh/authorized_keys", AuthorizedKeysHandler),
        (r"/api/gpulab/ssh/account", AccountHandler),
    ]
