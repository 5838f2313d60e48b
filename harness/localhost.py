"""Names under ``.localhost`` resolve to the loopback address, as RFC 6761 says and browsers do.

glibc does not (without systemd-resolved), so the tests' own HTTP and websocket clients would
not find ``alice.localhost``, a per-user subdomain of a test hub. :func:`install` makes this test
process resolve them; gpulab itself never needs it (``gpulab-client`` has the same rule).
"""

import socket

_original = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.rstrip(".").endswith(".localhost"):
        host = "127.0.0.1"
    return _original(host, *args, **kwargs)


def install():
    socket.getaddrinfo = _getaddrinfo
