"""The laptop client from the hub: ``/hub/gpulab/client/gpulab-client.pyz`` (one file to download
and run), ``/hub/gpulab/client/gpulab_client-<version>-py3-none-any.whl`` (for pip or pipx), and
``/hub/api/gpulab/version`` (what the client compares its own version with). None of them needs a
login: the client holds no secret, and a student fetches it with curl before having a token."""

import json

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from .. import clientdist

_built = {}


def _file(kind):
    if kind not in _built:
        _built[kind] = (clientdist.wheel if kind == "wheel" else clientdist.zipapp)()
    return _built[kind]


def install_commands(hub_url):
    """What the SSH page tells a student to run, by system."""
    base = f"{hub_url.rstrip('/')}/hub/gpulab/client"
    name, _ = _file("wheel")
    return {
        "zipapp": f"mkdir -p ~/.local/bin && curl -fsSLo ~/.local/bin/gpulab-client {base}/gpulab-client.pyz "
        "&& chmod +x ~/.local/bin/gpulab-client",
        "pipx": f"pipx install {base}/{name}",
        "windows": f"curl.exe -fsSLo gpulab-client.pyz {base}/gpulab-client.pyz  (then: python gpulab-client.pyz ...)",
    }


class ClientFileHandler(BaseHandler):
    def get(self, name):
        wheel, zipapp = _file("wheel"), _file("zipapp")
        for file_name, data in (wheel, zipapp):
            if name == file_name:
                self.set_header("Content-Type", "application/octet-stream")
                self.set_header("Content-Disposition", f'attachment; filename="{file_name}"')
                self.set_header("Cache-Control", "no-cache")
                return self.finish(data)
        raise web.HTTPError(
            404, f"no such file; the client is {zipapp[0]} or {wheel[0]} (this hub's version)"
        )


class VersionHandler(BaseHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"client": clientdist.version()}))


def handlers():
    return [
        (r"/gpulab/client/([^/]+)", ClientFileHandler),
        (r"/api/gpulab/version", VersionHandler),
    ]
