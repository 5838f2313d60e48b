"""Start admission in waves (gpulab.core.startgate) and the spawner's own readiness check (gpulab.hub.readiness)."""

import asyncio
import socket
import time

import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from gpulab.backends.swarm import cluster
from gpulab.core.startgate import StartGate, StartGates, width_for
from gpulab.hub import readiness


async def test_gate_admits_width_at_a_time_first_come_first_served():
    gate = StartGate(2)
    running, peak, order, seen = [0], [0], [], {}

    async def start(i):
        def waiting(position, starting):
            seen.setdefault(i, []).append((position, starting))

        async with gate.place(on_wait=waiting):
            order.append(i)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            await asyncio.sleep(0.02)
            running[0] -= 1

    tasks = []
    for i in range(6):
        tasks.append(asyncio.ensure_future(start(i)))
        await asyncio.sleep(0)  # arrive in order
    await asyncio.gather(*tasks)
    assert peak[0] == 2
    assert order == list(range(6))
    assert 0 not in seen and 1 not in seen  # admitted at once: no waiting message
    assert seen[2][0] == (1, 2) and seen[5][0] == (4, 2)
    assert [p for p, _ in seen[5]] == [4, 3, 2, 1]  # told as the queue moves
    assert gate.running == 0 and gate.waiting == 0


async def test_a_user_who_gives_up_leaves_the_queue():
    gate = StartGate(1)
    release = asyncio.Event()
    admitted = []

    async def hold():
        async with gate.place():
            await release.wait()

    async def start(i):
        async with gate.place():
            admitted.append(i)

    holder = asyncio.ensure_future(hold())
    await asyncio.sleep(0)
    quitter = asyncio.ensure_future(start("quitter"))
    patient = asyncio.ensure_future(start("patient"))
    await asyncio.sleep(0.01)
    assert gate.waiting == 2
    quitter.cancel()
    await asyncio.sleep(0)
    assert gate.waiting == 1
    release.set()
    await asyncio.gather(holder, patient)
    assert admitted == ["patient"]
    assert gate.running == 0


async def test_a_failed_start_gives_its_place_back():
    gate = StartGate(1)
    with pytest.raises(RuntimeError):
        async with gate.place():
            raise RuntimeError("container did not start")
    async with gate.place():
        assert gate.running == 1


async def test_wider_setting_admits_waiters_and_gates_are_per_host():
    gates = StartGates()
    gate = gates.get("w1", 1)
    assert gates.get("w2", 1) is not gate
    release = asyncio.Event()

    async def hold():
        async with gate.place():
            await release.wait()

    holder = asyncio.ensure_future(hold())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(hold())
    await asyncio.sleep(0.01)
    assert gate.waiting == 1
    assert gates.get("w1", 2) is gate
    await asyncio.sleep(0)
    assert gate.waiting == 0 and gate.running == 2
    release.set()
    await asyncio.gather(holder, second)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api(web.RequestHandler):
    def get(self):
        self.write({"version": "test"})


async def test_readiness_returns_as_soon_as_the_server_listens():
    port = _free_port()
    server = HTTPServer(web.Application([(r"/user/a/api", Api)]))

    async def listen_later():
        await asyncio.sleep(0.3)
        server.listen(port, "127.0.0.1")
        return time.monotonic()

    listening = asyncio.ensure_future(listen_later())
    await readiness.wait_answering(f"http://127.0.0.1:{port}/user/a/api", 10)
    answered = time.monotonic()
    try:
        assert answered - await listening < 0.2  # polled every 50 ms, not with the hub's backoff
    finally:
        server.stop()


async def test_readiness_any_http_answer_counts():
    port = _free_port()
    server = HTTPServer(web.Application([]))  # 404 for everything
    server.listen(port, "127.0.0.1")
    try:
        await asyncio.wait_for(
            readiness.wait_answering(f"http://127.0.0.1:{port}/user/a/api", 5), 5
        )
    finally:
        server.stop()


async def test_readiness_says_why_when_the_container_exits_and_times_out():
    port = _free_port()  # nothing listens

    async def exited():
        return "exit status 1; its log ends with:\nNB_USER '' is not a valid login name"

    t0 = time.monotonic()
    with pytest.raises(readiness.ServerExited, match="not a valid login name"):
        await readiness.wait_answering(
            f"http://127.0.0.1:{port}/api", 30, alive=exited, alive_every=0.1
        )
    assert time.monotonic() - t0 < 2

    async def running():
        return None

    with pytest.raises(TimeoutError, match="did not answer within 0.3 s"):
        await readiness.wait_answering(
            f"http://127.0.0.1:{port}/api", 0.3, alive=running, alive_every=0.1
        )


def test_width_is_the_admins_setting_or_cpus_plus_one():
    assert width_for(2) == 3 and width_for(64) == 65
    assert width_for(0) == 2  # a host that reports no CPUs still starts two at a time
    assert width_for(16, configured=4) == 4


def test_swarm_nodes_cpus_come_from_their_description():
    nodes = [
        {"Description": {"Hostname": "w1", "Resources": {"NanoCPUs": 8 * 10**9}}, "Spec": {}},
        {"Description": {"Hostname": "w2", "Resources": {}}, "Spec": {}},
    ]
    assert cluster.node_cpus(nodes) == {"w1": 8, "w2": 0}
