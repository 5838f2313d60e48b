"""The laptop client (gpulab_client): standard library only, fast to start, a correct websocket."""

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

import pytest

from gpulab_client import websocket as ws
from gpulab_client.gpus import table
from gpulab_client.hub import HubError, read_token

CLIENT = os.path.join(os.path.dirname(sys.executable), "gpulab-client")
SERVER_STACK = ("jupyterhub", "dockerspawner", "docker", "tornado", "traitlets", "yaml", "gpulab")


def test_the_client_imports_no_server_stack():
    code = "import sys, gpulab_client.cli, gpulab_client.sshproxy, gpulab_client.gpus; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert not loaded & set(SERVER_STACK), loaded & set(SERVER_STACK)


def test_ssh_proxy_starts_within_150ms(tmp_path):
    """The whole process, from exec to its first connection attempt (here refused at once)."""
    token = tmp_path / "token"
    token.write_text("t")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                CLIENT,
                "ssh-proxy",
                "--hub",
                f"http://127.0.0.1:{port}",
                "--user",
                "x",
                "--token-file",
                str(token),
            ],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 1 and "cannot reach the hub" in proc.stderr, proc.stderr
    print(
        f"\n[gpulab] gpulab-client ssh-proxy start to first connect: median {statistics.median(times) * 1000:.0f} ms"
    )
    assert statistics.median(times) <= 0.15, times


def test_token_sources(tmp_path, monkeypatch):
    f = tmp_path / "t"
    f.write_text("  abc\n")
    assert read_token(str(f), environ={}) == "abc"
    assert read_token("", environ={"GPULAB_TOKEN": "xyz"}) == "xyz"
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(HubError, match="Token page"):
        read_token("", environ={})
    (tmp_path / "empty").write_text("")
    with pytest.raises(HubError, match="is empty"):
        read_token(str(tmp_path / "empty"), environ={})


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 300_001])
def test_masking_and_frame_lengths(n):
    data = os.urandom(n)
    key = b"\x01\x02\x03\x04"
    assert ws.mask(ws.mask(data, key), key) == data
    assert ws.mask(b"\x00" * 5, key) == b"\x01\x02\x03\x04\x01"
    frame = ws.frame(ws.OP_BINARY, data, key)
    b1, b2 = frame[0], frame[1]
    assert b1 == 0x82 and b2 & 0x80
    size = b2 & 0x7F
    header = 2 + (2 if size == 126 else 8 if size == 127 else 0)
    length = (
        size if size < 126 else struct.unpack("!H" if size == 126 else "!Q", frame[2:header])[0]
    )
    assert (
        length == n
        and frame[header : header + 4] == key
        and ws.mask(frame[header + 4 :], key) == data
    )


def server_frame(opcode, payload, fin=True):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += (
        bytes([n])
        if n < 126
        else (
            bytes([126]) + struct.pack("!H", n)
            if n < 65536
            else bytes([127]) + struct.pack("!Q", n)
        )
    )
    return head + payload


def test_recv_fragments_ping_and_close():
    a, b = socket.socketpair()
    client = ws.WebSocket(a)
    b.sendall(
        server_frame(ws.OP_PING, b"hi")
        + server_frame(ws.OP_BINARY, b"x" * 70000, fin=False)
        + server_frame(ws.OP_CONT, b"yz")
    )
    assert client.recv() == b"x" * 70000 + b"yz"
    pong = b.recv(100)
    assert pong[0] == 0x80 | ws.OP_PONG and ws.mask(pong[6:8], pong[2:6]) == b"hi"
    b.sendall(server_frame(ws.OP_CLOSE, struct.pack("!H", 1000)))
    assert client.recv() is None and client.closed
    b.close()


def test_handshake_against_a_real_websocket_server():
    """tornado (a test dependency only) as the server: echo, then a refused upgrade with its status."""
    import asyncio

    from tornado.web import Application, RequestHandler
    from tornado.websocket import WebSocketHandler

    class Echo(WebSocketHandler):
        def on_message(self, message):
            self.write_message(message, binary=True)

    class Forbidden(RequestHandler):
        def get(self):
            self.set_status(403)
            self.finish("nope")

    ready = threading.Event()
    box = {}

    def serve():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = Application([(r"/echo", Echo), (r"/no", Forbidden)]).listen(0, "127.0.0.1")
        box["port"] = next(iter(server._sockets.values())).getsockname()[1]
        box["loop"] = loop
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(10)
    port = box["port"]
    conn = ws.WebSocket.connect(f"ws://127.0.0.1:{port}/echo", {"Authorization": "token t"})
    payload = os.urandom(1 << 20)
    conn.send(payload)
    got = b""
    while len(got) < len(payload):
        got += conn.recv()
    assert got == payload
    conn.close()
    with pytest.raises(ws.WebSocketError) as info:
        ws.WebSocket.connect(f"ws://127.0.0.1:{port}/no")
    assert info.value.status == 403
    box["loop"].call_soon_threadsafe(box["loop"].stop)


def test_admin_table_with_and_without_nodes():
    data = {
        "gpus": [
            {
                "index": 0,
                "model": "A100",
                "memory_total": 40 << 30,
                "holders": [{"user": "alice", "server": "", "since": 0}],
            },
            {"index": 1, "model": "A100", "memory_total": 40 << 30, "holders": []},
        ],
        "queue": [{"user": "bob", "gpus": 1}],
    }
    text = table(data, now=3600)
    assert (
        "alice" in text
        and "60 min" in text
        and "waiting: bob (1 GPU)" in text
        and "NODE" not in text
    )
    data["gpus"][0]["node"] = "gpu-node-1"
    assert "gpu-node-1" in table(data, now=3600).splitlines()[1]
