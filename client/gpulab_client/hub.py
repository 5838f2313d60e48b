"""Talking to a gpulab hub's REST API with a user's API token (standard library only)."""

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

DEFAULT_TOKEN_FILE = "~/.config/gpulab/token"


class HubError(Exception):
    """The hub could not be reached or refused; the message says which and why."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def hub_from_server(environ=os.environ):
    """In a user's server: the hub's URL as the server reaches it ($JUPYTERHUB_API_URL less
    ``/hub/api``), else None."""
    api = environ.get("JUPYTERHUB_API_URL", "")
    return api[: -len("/hub/api")] if api.endswith("/hub/api") else None


def add_user_arguments(p):
    """--hub, --user, --token-file, --ca-file: what a command run with the user's own token takes."""
    p.add_argument(
        "--hub",
        default=os.environ.get("GPULAB_HUB_URL") or hub_from_server(),
        help="the hub's URL (default: $GPULAB_HUB_URL; in your server, the hub that started it)",
    )
    p.add_argument(
        "--user", help="your hub user name (default: the token's; admins may name another user)"
    )
    p.add_argument(
        "--token-file",
        default="",
        help="file with your API token (default: $GPULAB_TOKEN, else ~/.config/gpulab/token)",
    )
    p.add_argument(
        "--ca-file",
        default=os.environ.get("GPULAB_CA_FILE"),
        help="CA certificate(s) for the hub's TLS certificate",
    )


def connect(args):
    """(Hub, user name) from those arguments."""
    if not args.hub:
        raise HubError("pass --hub URL (or set GPULAB_HUB_URL)")
    hub = Hub(args.hub, read_token(args.token_file), ca_file=args.ca_file)
    advice = hub.version_advice()
    if advice:
        print(f"gpulab-client: {advice}", file=sys.stderr)
    return hub, args.user or hub.whoami()


def read_token(token_file="", environ=os.environ):
    """The API token: from ``token_file``, else $GPULAB_TOKEN / $JUPYTERHUB_API_TOKEN, else the default file."""
    if not token_file:
        token = environ.get("GPULAB_TOKEN") or environ.get("JUPYTERHUB_API_TOKEN") or ""
        if token:
            return token.strip()
        token_file = DEFAULT_TOKEN_FILE
        if not os.path.exists(os.path.expanduser(token_file)):
            raise HubError(
                "no API token: create one on the hub's Token page and save it in "
                f"{DEFAULT_TOKEN_FILE} (chmod 600), or pass --token-file, or set GPULAB_TOKEN"
            )
    try:
        with open(os.path.expanduser(token_file)) as f:
            token = f.read().strip()
    except OSError as e:
        raise HubError(f"cannot read the token file {token_file}: {e.strerror}")
    if not token:
        raise HubError(f"the token file {token_file} is empty")
    return token


def ssl_context(ca_file=None):
    """Verify the hub's certificate against the system CAs, or ``ca_file`` (a lab's own CA)."""
    context = (
        ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    )
    return context


class Hub:
    def __init__(self, url, token, *, ca_file=None, timeout=30):
        if "://" not in url:
            raise HubError(f"the hub URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ssl = ssl_context(ca_file) if self.url.startswith("https://") else None
        self.headers = {"Authorization": f"token {token}"}

    def _open(self, method, path, body=None, timeout=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + "/hub/api" + path, data=data, method=method, headers=self.headers
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout, context=self.ssl)
        except urllib.error.HTTPError as e:
            detail = e.read(2000).decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except (ValueError, AttributeError):
                pass
            raise HubError(f"{method} {path}: HTTP {e.code} {detail}".strip(), e.code)
        except urllib.error.URLError as e:
            raise HubError(f"cannot reach the hub at {self.url}: {e.reason}")
        except OSError as e:
            raise HubError(f"cannot reach the hub at {self.url}: {e}")

    def api(self, method, path, body=None):
        with self._open(method, path, body) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def whoami(self):
        return self.api("GET", "/user")["name"]

    def version_advice(self):
        """A line saying how to update when this client's version is not the hub's ('' when it is,
        or when the hub does not say)."""
        from . import __version__

        try:
            theirs = self.api("GET", "/gpulab/version").get("client", "")
        except (HubError, ValueError, AttributeError):
            return ""
        if not theirs or theirs == __version__:
            return ""
        return (
            f"gpulab-client {__version__} is not the hub's ({theirs}): update it with "
            f"curl -fsSLo ~/.local/bin/gpulab-client {self.url}/hub/gpulab/client/gpulab-client.pyz "
            "(or see the hub's SSH page)"
        )

    def server(self, user, server_name=""):
        return self.api("GET", "/users/" + quote(user, safe=""))["servers"].get(server_name)

    def ready_server(self, user, log, timeout=900, bar=None):
        """The user's default server (a dict with its ``url``), starting it first if needed.

        Progress messages go to ``log`` while it starts (or waits for GPUs), or to ``bar`` (a
        :class:`~.progress.Progress`) when it draws on a terminal.
        """
        path = "/users/" + quote(user, safe="")
        server = self.server(user)
        if server and server.get("ready"):
            return server
        if not server:
            options = self.last_options(user)
            shown = ", ".join(f"{k} {v}" for k, v in sorted(options.items()) if v not in ("", None))
            log(
                f"starting the server of {user} as it was last started ({shown})"
                if shown
                else f"starting the server of {user}"
            )
            self.api("POST", path + "/server", options)
        failed = []
        with self._open("GET", path + "/server/progress", timeout=timeout) as stream:
            for raw in stream:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("message"):
                    if bar is not None and bar.tty:
                        percent = event.get("progress")
                        bar.update(percent / 100 if percent is not None else None, event["message"])
                    else:
                        log(f"[{event.get('progress', '')}%] {event['message']}")
                if event.get("failed"):
                    failed.append(event.get("message") or "failed")
                if event.get("ready") or event.get("failed"):
                    break
        if bar is not None:
            bar.done()
        server = self.server(user)
        if failed or not server or not server.get("ready"):
            raise HubError(
                f"the server of {user} did not start: {'; '.join(failed) or 'not ready'}"
            )
        return server

    def last_options(self, user, server_name=""):
        """The options the server was last started with (profile, GPUs, saved environment), so
        that SSH starts what the user last used; {} when the hub does not say."""
        try:
            model = self.api("GET", "/users/" + quote(user, safe="") + "?include_stopped_servers=1")
        except HubError:
            return {}
        options = ((model or {}).get("servers") or {}).get(server_name, {}).get("user_options")
        return dict(options) if isinstance(options, dict) else {}

    def websocket_url(self, server_url):
        """ws(s):// URL of a path on the user's server. ``server_url`` is the hub's ``url`` of the
        server: a path, or a full URL when the hub gives each user their own host name."""
        if "://" in server_url:
            scheme, rest = server_url.split("://", 1)
            return ("wss" if scheme == "https" else "ws") + "://" + rest
        scheme, rest = self.url.split("://", 1)
        origin = ("wss" if scheme == "https" else "ws") + "://" + rest.split("/", 1)[0]
        return origin + server_url
