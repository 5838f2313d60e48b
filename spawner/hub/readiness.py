"""The spawner's own check that a new server answers, so the hub finds it ready at once.

After ``Spawner.start()`` returns, JupyterHub polls the server with exponential backoff (waits
of up to 0.2, 0.4, 0.8, 1.6 ... s, randomised), so a server that is up after 2.1 s is often
noticed only at 3-4 s. The spawner knows better when to look: it asks the server's ``api``
URL every ``interval`` seconds (a refused connection costs the host almost nothing) and returns
as soon as any HTTP answer comes; JupyterHub's first check, made at once, then succeeds. It
also notices a container that exited, and says why, instead of waiting for the timeout.
"""

import asyncio
import collections
import threading
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class ServerExited(Exception):
    """The server's container or task stopped before its server answered."""


async def wait_answering(url, timeout, *, alive=None, interval=0.05, alive_every=1.0):
    """Return once ``url`` gives any HTTP response (a 404 or 302 counts: the server is up).

    ``alive`` (async, optional) returns None while the server's process may still come up, or
    a reason once it cannot (checked every ``alive_every`` s); that reason is raised as
    :class:`ServerExited`. Raises :class:`TimeoutError` after ``timeout`` seconds.
    """
    client = AsyncHTTPClient()
    deadline = time.monotonic() + timeout
    next_alive = time.monotonic() + alive_every
    while True:
        try:
            await client.fetch(
                HTTPRequest(url, connect_timeout=2, request_timeout=5, follow_redirects=False)
            )
            return
        except HTTPClientError as e:
            if e.code != 599:
                return
        except (OSError, asyncio.TimeoutError):
            pass  # refused, reset, unreachable: not listening yet
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        if alive is not None and now >= next_alive:
            reason = await alive()
            if reason is not None:
                raise ServerExited(reason)
            next_alive = time.monotonic() + alive_every
        await asyncio.sleep(interval)


class LogTail:
    """The last ``lines`` lines a starting container wrote, followed in a thread from its start,
    so they can be shown even after Docker removed the exited container (``auto_remove``)."""

    def __init__(self, api, container_id, lines=12):
        self.lines = collections.deque(maxlen=lines)
        self._stream = None
        self._closed = False
        if container_id:
            threading.Thread(
                target=self._follow, args=(api, container_id), daemon=True, name="gpulab-log-tail"
            ).start()

    def _follow(self, api, container_id):
        try:
            self._stream = api.logs(container_id, stream=True, follow=True)
            if self._closed:
                self._stream.close()
                return
            for chunk in self._stream:
                self.lines.extend(chunk.decode(errors="replace").splitlines())
        except Exception:
            pass

    async def text(self, settle=0.3):
        await asyncio.sleep(settle)  # let the last lines of an exited container arrive
        shown = "\n".join(line for line in self.lines if line.strip())
        return f"; its log ends with:\n{shown}" if shown else ""

    def close(self):
        self._closed = True
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:
                pass
