"""``gpulab-client ssh-proxy``: SSH through the hub's own HTTP(S) port, as ssh's ProxyCommand.

    ProxyCommand gpulab-client ssh-proxy --hub https://hub.lab.example --user alice --token-file ~/.config/gpulab/token

Authenticates with the user's hub API token, starts the user's server if it is not running
(progress on stderr), then pipes stdin/stdout through a websocket to ``<server>/sshd/``
(jupyter-server-proxy's raw socket route to the container's own sshd).
"""

import os
import sys
import threading

from .hub import Hub, HubError, read_token
from .progress import Progress
from .websocket import WebSocket, WebSocketError

CHUNK = 256 * 1024
ROUTE = "sshd/"


def pump_stdin(ws, stdin_fd):
    """stdin -> websocket until EOF; then close our sending side. Reads into one reused buffer
    (a fresh 256 KiB bytes object per read costs as much as the copy)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        while True:
            n = os.readv(stdin_fd, [buf])
            if not n:
                break
            ws.send(view[:n])
    except OSError:
        pass
    finally:
        ws.close()


def pump_socket(ws, stdout_fd):
    """websocket -> stdout until the server closes."""
    while True:
        msg = ws.recv()
        if msg is None:
            return
        view = memoryview(msg)
        while view:
            view = view[os.write(stdout_fd, view) :]


def pipe(ws, stdin_fd=0, stdout_fd=1):
    upstream = threading.Thread(target=pump_stdin, args=(ws, stdin_fd), daemon=True)
    upstream.start()
    try:
        pump_socket(ws, stdout_fd)
    finally:
        ws.close()


def run(hub_url, user, token, *, log, ca_file=None, stdin_fd=0, stdout_fd=1):
    hub = Hub(hub_url, token, ca_file=ca_file)
    user = user or hub.whoami()
    server = hub.ready_server(user, log, bar=Progress("gpulab: starting your server"))
    url = hub.websocket_url(server["url"] + ROUTE)
    try:
        ws = WebSocket.connect(url, hub.headers, ssl_context=hub.ssl)
    except WebSocketError as e:
        raise HubError(f"the SSH route {url} refused the connection: {e}")

    def advise():  # beside the connection, never before it: ssh waits for nothing
        advice = hub.version_advice()
        if advice:
            log(advice)

    threading.Thread(target=advise, daemon=True).start()
    pipe(ws, stdin_fd, stdout_fd)


def add_parser(sub):
    p = sub.add_parser(
        "ssh-proxy", help="carry an SSH connection through the hub (use as ssh's ProxyCommand)"
    )
    p.add_argument(
        "--hub",
        default=os.environ.get("GPULAB_HUB_URL"),
        help="the hub's URL, e.g. https://hub.lab.example (default: $GPULAB_HUB_URL)",
    )
    p.add_argument("--user", default="", help="hub user name (default: the token's owner)")
    p.add_argument(
        "--token-file",
        default="",
        help="file with a hub API token (default: $GPULAB_TOKEN, else ~/.config/gpulab/token)",
    )
    p.add_argument(
        "--ca-file",
        default=os.environ.get("GPULAB_CA_FILE"),
        help="CA certificate(s) that signed the hub's TLS certificate, if not a public CA",
    )
    p.set_defaults(func=main)
    return p


def main(args):
    def log(msg):
        print(f"gpulab ssh-proxy: {msg}", file=sys.stderr, flush=True)

    try:
        if not args.hub:
            raise HubError("pass --hub URL (or set GPULAB_HUB_URL)")
        run(args.hub, args.user, read_token(args.token_file), log=log, ca_file=args.ca_file)
    except (HubError, WebSocketError) as e:
        log(str(e))
        return 1
    except OSError as e:
        log(f"connection failed: {e}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
