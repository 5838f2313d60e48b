"""``gpulab ssh-proxy``: SSH through the hub's own HTTP(S) port, for ssh's ProxyCommand.

    ProxyCommand gpulab ssh-proxy --hub https://hub.lab.example --user alice --token-file ~/.config/gpulab/token

Authenticates with the user's JupyterHub API token, starts the user's server if it
is not running (progress on stderr), then pipes stdin/stdout through a websocket to
``/user/<name>/sshd/`` (jupyter-server-proxy's raw socket proxy to the container's sshd).
"""

import asyncio
import json
import os
import sys
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

CHUNK = 256 * 1024
ROUTE = "sshd/"


class ProxyError(Exception):
    pass


def read_token(token_file, environ=os.environ):
    if token_file:
        with open(os.path.expanduser(token_file)) as f:
            token = f.read().strip()
    else:
        token = environ.get("GPULAB_TOKEN") or environ.get("JUPYTERHUB_API_TOKEN") or ""
    if not token:
        raise ProxyError("no API token: pass --token-file (create one on the hub's Token page) or set GPULAB_TOKEN")
    return token


def websocket_url(hub_url, server_url):
    scheme, rest = hub_url.split("://", 1)
    origin = ("wss" if scheme == "https" else "ws") + "://" + rest.split("/", 1)[0]
    return origin + server_url + ROUTE


class Hub:
    def __init__(self, hub_url, token, log):
        self.url = hub_url.rstrip("/")
        self.headers = {"Authorization": f"token {token}"}
        self.http = AsyncHTTPClient()
        self.log = log

    async def api(self, method, path, body=None, **kw):
        req = HTTPRequest(self.url + "/hub/api" + path, method=method, headers=self.headers, body=body, **kw)
        try:
            resp = await self.http.fetch(req)
        except HTTPClientError as e:
            detail = e.response.body.decode(errors="replace")[:300] if e.response is not None else ""
            raise ProxyError(f"{method} {path}: HTTP {e.code} {detail}")
        except OSError as e:
            raise ProxyError(f"cannot reach the hub at {self.url}: {e}")
        return json.loads(resp.body) if resp.body else None

    async def ready_server(self, user, timeout=600):
        """The user's default server model, starting it first if needed."""
        path = "/users/" + quote(user, safe="")
        server = (await self.api("GET", path))["servers"].get("")
        if server and server.get("ready"):
            return server
        if not server:
            self.log(f"gpulab ssh-proxy: starting the server of {user}")
            await self.api("POST", path + "/server", body="{}")
        failed = []

        def on_chunk(chunk, buf=[b""]):
            buf[0] += chunk
            *lines, buf[0] = buf[0].split(b"\n")
            for line in lines:
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    if event.get("message"):
                        self.log(f"gpulab ssh-proxy: [{event.get('progress', '')}%] {event['message']}")
                    if event.get("failed"):
                        failed.append(event.get("message", "failed"))

        await self.api("GET", path + "/server/progress", streaming_callback=on_chunk, request_timeout=timeout)
        server = (await self.api("GET", path))["servers"].get("")
        if failed or not server or not server.get("ready"):
            raise ProxyError(f"the server of {user} did not start: {'; '.join(failed) or 'not ready'}")
        return server


async def pipe(ws_url, headers, stdin_fd, stdout_fd):
    try:
        conn = await websocket_connect(HTTPRequest(ws_url, headers=headers), max_message_size=64 * 1024 * 1024)
    except HTTPClientError as e:
        raise ProxyError(f"the SSH route {ws_url} refused the connection: HTTP {e.code}")
    loop = asyncio.get_running_loop()

    async def upstream():
        while True:
            data = await loop.run_in_executor(None, os.read, stdin_fd, CHUNK)
            if not data:
                break
            await conn.write_message(data, binary=True)

    async def downstream():
        while True:
            msg = await conn.read_message()
            if msg is None:
                return
            view = memoryview(msg if isinstance(msg, bytes) else msg.encode())
            while view:
                view = view[os.write(stdout_fd, view):]

    up = asyncio.ensure_future(upstream())
    try:
        await downstream()
    finally:
        up.cancel()
        conn.close()


async def run(hub_url, user, token, *, log, stdin_fd=0, stdout_fd=1):
    hub = Hub(hub_url, token, log)
    if not user:
        user = (await hub.api("GET", "/user"))["name"]
    server = await hub.ready_server(user)
    await pipe(websocket_url(hub.url, server["url"]), hub.headers, stdin_fd, stdout_fd)


def add_parser(sub):
    p = sub.add_parser("ssh-proxy", help="pipe an SSH connection through the hub (use as ssh ProxyCommand)")
    p.add_argument("--hub", default=os.environ.get("GPULAB_HUB_URL"), help="the hub's URL, e.g. https://hub.lab.example (default: $GPULAB_HUB_URL)")
    p.add_argument("--user", default="", help="hub user name (default: the token's owner)")
    p.add_argument("--token-file", default="", help="file with a hub API token (default: $GPULAB_TOKEN)")
    p.set_defaults(func=cmd_ssh_proxy)
    return p


def cmd_ssh_proxy(args):
    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        if not args.hub:
            raise ProxyError("pass --hub URL (or set GPULAB_HUB_URL)")
        asyncio.run(run(args.hub, args.user, read_token(args.token_file), log=log))
    except (ProxyError, OSError) as e:
        log(f"gpulab ssh-proxy: {e}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
