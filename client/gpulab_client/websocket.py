"""A small WebSocket client (RFC 6455) on the standard library: enough to carry SSH bytes.

Binary messages only are sent; text, ping, pong and close frames are understood. One thread
may call :meth:`WebSocket.recv` while others call :meth:`WebSocket.send` (sends are serialised
by a lock; pongs go through the same lock).
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEADER = 64 * 1024
RECV_CHUNK = 1024 * 1024

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(Exception):
    """The handshake was refused (``status`` set) or the peer broke the protocol."""

    def __init__(self, message, status=None, body=b""):
        super().__init__(message)
        self.status = status
        self.body = body


_ONES = {}  # number of 4-byte words -> the integer 0x...000000010000000100000001 (cached per size)


def mask(data, key):
    """XOR ``data`` with the 4-byte ``key`` repeated (the client-to-server masking).

    Done as big-integer arithmetic, at C speed: the repeated key is the key times 0x...00010001
    (one multiplication, cached per frame size) instead of a built key string, so masking costs
    about two passes over the data.
    """
    n = len(data)
    if not n:
        return b""
    words, tail = divmod(n, 4)
    ones = _ONES.get(words)
    if ones is None:
        ones = int.from_bytes(b"\x01\x00\x00\x00" * words, "little")
        if len(_ONES) < 64:
            _ONES[words] = ones
    body = (
        int.from_bytes(data[: n - tail], "little") ^ (int.from_bytes(key, "little") * ones)
    ).to_bytes(n - tail, "little")
    if tail:
        body += bytes(data[n - tail + i] ^ key[i] for i in range(tail))
    return body


def frame(opcode, payload, key=None):
    """One final frame, masked with ``key`` (a fresh random key when None)."""
    key = key or os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(payload, key)


def accept_value(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WebSocket:
    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self._buf = bytearray(leftover)
        self._send_lock = threading.Lock()
        self.closed = False

    @classmethod
    def connect(cls, url, headers=None, *, timeout=30, ssl_context=None):
        """Open ``ws://`` or ``wss://`` ``url``; ``headers`` is a dict of extra request headers."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"not a websocket URL: {url}")
        secure = parts.scheme == "wss"
        host = parts.hostname
        port = parts.port or (443 if secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock = _connect(host, port, timeout)
        try:
            if secure:
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=host)
            key = base64.b64encode(os.urandom(16)).decode()
            default_port = 443 if secure else 80
            host_header = host if port == default_port else f"{host}:{port}"
            if ":" in host and not host.startswith("["):
                host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: {host_header}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            ]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status, response_headers, rest = _read_response_head(sock)
            if status != 101:
                wanted = min(int(response_headers.get("content-length") or 0), 2048)
                body = rest + _read_some(sock, wanted - len(rest))
                raise WebSocketError(
                    f"the server answered HTTP {status} instead of switching to a websocket",
                    status,
                    body,
                )
            if response_headers.get("sec-websocket-accept") != accept_value(key):
                raise WebSocketError("the server's Sec-WebSocket-Accept does not match our key")
            sock.settimeout(None)
            if not secure or hasattr(sock, "setsockopt"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return cls(sock, rest)
        except BaseException:
            sock.close()
            raise

    # --- sending ---

    def _send_frame(self, opcode, payload):
        data = frame(opcode, payload)
        with self._send_lock:
            self.sock.sendall(data)

    def send(self, data):
        """Send ``data`` as one binary message."""
        self._send_frame(OP_BINARY, data)  # any bytes-like object; sent before this returns

    def close(self, code=1000):
        if self.closed:
            return
        self.closed = True
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # --- receiving ---

    def _fill(self, need):
        while len(self._buf) < need:
            chunk = self.sock.recv(RECV_CHUNK)
            if not chunk:
                raise ConnectionError("the connection closed in the middle of a frame")
            self._buf += chunk

    def _take(self, n):
        self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _read_frame(self):
        b1, b2 = self._take(2)
        fin, opcode, masked, n = b1 & 0x80, b1 & 0x0F, b2 & 0x80, b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._take(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._take(8))
        key = self._take(4) if masked else None
        payload = self._take(n)
        if key:
            payload = mask(payload, key)
        return bool(fin), opcode, payload

    def recv(self):
        """The next data message as bytes, or None once the peer closed the connection."""
        parts = []
        while True:
            try:
                if not self._buf:
                    chunk = self.sock.recv(RECV_CHUNK)
                    if not chunk:
                        return None
                    self._buf += chunk
                fin, opcode, payload = self._read_frame()
            except (ConnectionError, OSError):
                if self.closed:
                    return None
                raise
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.close()
                return None
            if opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
                raise WebSocketError(f"unknown websocket opcode {opcode}")
            parts.append(payload)
            if fin:
                return b"".join(parts)


def _connect(host, port, timeout):
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        # RFC 6761: names under .localhost are loopback (browsers resolve them so; glibc may not)
        if host.rstrip(".").endswith(".localhost"):
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raise


def _read_some(sock, n):
    """Up to ``n`` more bytes of an error response's body, waiting at most 2 s."""
    if n <= 0:
        return b""
    try:
        sock.settimeout(2)
        return sock.recv(n)
    except OSError:
        return b""


def _read_response_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise WebSocketError("the server closed the connection during the websocket handshake")
        data += chunk
        if len(data) > MAX_HEADER:
            raise WebSocketError("the server's response headers are too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise WebSocketError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest
