"""The spawner's own check that a new server answers, so the hub finds it ready at once.

After ``Spawner.start()`` returns, JupyterHub polls the server with exponential backoff (waits
of up to 0.2, 0.4, 0.8, 1.6 ... s, randomised), so a server that is up after 2.1 s is often
noticed only at 3-4 s. The spawner knows better when to look: it asks the server's ``api``
URL every ``interval`` seconds (a refused connection costs the host almost nothing) and returns
as soon as any HTTP answer comes; JupyterHub's first check, made at once, then succeeds. It
also notices a container that exited, and says why, instead of waiting for the timeout.
"""

import asyncio
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
            await client.fetch(HTTPRequest(url, connect_timeout=2, request_timeout=5, follow_redirects=False))
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
