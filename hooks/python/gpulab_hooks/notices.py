"""GPU reclaim notices inside the user's server (a Jupyter server extension).

Every ``POLL_SECONDS`` the server asks the hub, with its own API token, whether the hub warned
this server that its GPUs will be reclaimed (``/hub/api/gpulab/users/<name>/notices``). A new
warning is written to every terminal of the user in the container (JupyterLab terminals and SSH
sessions alike: they are the user's ptys), and JupyterLab / Notebook 7 show it as a notification
with a "Keep my GPUs" button (the ``gpulab-notices`` frontend extension reads
``<server>/gpulab/notices``, which this extension relays from the hub). Keeping is the user's own
act on the hub's GPU page, which the button opens: this server's token cannot keep (so no script
in the container can keep its GPUs forever).

Standard library plus what the single-user server already has (tornado, jupyter_server).
"""

import json
import os
import time
import urllib.parse

POLL_SECONDS = 20


def _jupyter_server_extension_points():
    return [{"module": "gpulab_hooks.notices"}]


def message(notice, server):
    when = (
        time.strftime("%H:%M UTC", time.gmtime(notice["stop_at"]))
        if notice.get("stop_at")
        else "soon"
    )
    name = f" {server}" if server else ""
    keep = (
        " Keep it from the hub's home page or JupyterLab's notification."
        if notice.get("reason") == "idle"
        else ""
    )
    return f"gpulab: your server{name} will be stopped at {when} and its GPUs given back: {notice.get('text', '')}.{keep}"


def write_to_terminals(text, uid=None, pts="/dev/pts"):
    """Write ``text`` to every pseudo-terminal the user owns; returns how many got it."""
    uid = os.getuid() if uid is None else uid
    sent = 0
    try:
        names = [n for n in os.listdir(pts) if n.isdigit()]
    except OSError:
        return 0
    data = ("\r\n\a*** " + text + " ***\r\n").encode()
    for n in names:
        path = os.path.join(pts, n)
        try:
            if os.stat(path).st_uid != uid:
                continue
            fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, data)
            sent += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return sent


class Notices:
    """The hub's latest word on this server, polled with the server's token."""

    def __init__(self, api_url, token, user, server, log):
        self.url = f"{api_url.rstrip('/')}/gpulab/users/{urllib.parse.quote(user, safe='')}"
        self.token = token
        self.server = server
        self.log = log
        self.current = None  # this server's notice, or None
        self.reclaimed = []
        self._told = None  # warned_at of the last notice written to the terminals

    async def _call(self, path, method="GET", body=None):
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        req = HTTPRequest(
            self.url + path,
            method=method,
            body=json.dumps(body) if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            request_timeout=10,
        )
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        return resp.code, (json.loads(resp.body) if resp.body else {})

    async def poll(self):
        try:
            code, body = await self._call("/notices")
        except Exception as e:  # the hub restarting: try again next round
            self.log.debug("gpulab notices: %s", e)
            return
        if code != 200:
            self.log.debug("gpulab notices: hub answered %s", code)
            return
        self.current = (body.get("servers") or {}).get(self.server)
        if self.current and self.current.get("warned_at") != self._told:
            self._told = self.current.get("warned_at")
            n = write_to_terminals(message(self.current, self.server))
            self.log.warning(
                "gpulab: GPU reclaim warning (told %d terminal(s)): %s", n, self.current.get("text")
            )
        elif not self.current:
            self._told = None


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.base.handlers import APIHandler
    from jupyter_server.utils import url_path_join
    from tornado import web
    from tornado.ioloop import IOLoop, PeriodicCallback

    env = os.environ
    if not (
        env.get("JUPYTERHUB_API_URL")
        and env.get("JUPYTERHUB_API_TOKEN")
        and env.get("JUPYTERHUB_USER")
    ):
        return  # not started by a hub
    notices = Notices(
        env["JUPYTERHUB_API_URL"],
        env["JUPYTERHUB_API_TOKEN"],
        env["JUPYTERHUB_USER"],
        env.get("JUPYTERHUB_SERVER_NAME", ""),
        serverapp.log,
    )

    class NoticeHandler(APIHandler):
        @web.authenticated
        async def get(self):
            await notices.poll()  # the hub's word now, not up to a poll interval old
            self.finish(
                json.dumps(
                    {
                        "notice": notices.current,
                        "server": notices.server,
                        "message": message(notices.current, notices.server)
                        if notices.current
                        else None,
                    }
                )
            )

    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "gpulab", "notices"), NoticeHandler),
        ],
    )
    PeriodicCallback(notices.poll, POLL_SECONDS * 1000).start()
    IOLoop.current().add_callback(notices.poll)
