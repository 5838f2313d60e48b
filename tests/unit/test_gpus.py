import asyncio
import random
from types import SimpleNamespace

import pytest

from gpulab.core.gpus.allocator import Allocator, GPUsBusy, QuotaExceeded, holdings_from_containers
from gpulab.core.gpus.inventory import GPU, discover, from_nvml

SITE = {"devices": "auto", "mode": "exclusive", "max_shared": 2, "shared_overrides": {}}


class FakeNVML:
    """Stands in for pynvml: records init/shutdown, serves a fixed device list."""

    def __init__(self, devices):
        self.devices = devices
        self.calls = []

    def nvmlInit(self):
        self.calls.append("init")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetUUID(self, h):
        return h["uuid"]

    def nvmlDeviceGetName(self, h):
        return h["name"]

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=h["mem"], free=h["mem"], used=0)


def gpus(n, share=1):
    return [GPU(i, f"GPU-{i:04d}", "Test", 16 << 30, share) for i in range(n)]


def test_inventory_from_nvml_bytes_and_str():
    nvml = FakeNVML(
        [
            {"uuid": b"GPU-aaaa", "name": b"NVIDIA H100 80GB HBM3", "mem": 85520809984},
            {"uuid": "GPU-bbbb", "name": "NVIDIA A100", "mem": 42949672960},
        ]
    )
    found = from_nvml(nvml)
    assert [(g.index, g.uuid, g.model, g.memory_total) for g in found] == [
        (0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 85520809984),
        (1, "GPU-bbbb", "NVIDIA A100", 42949672960),
    ]
    assert nvml.calls == ["init", "shutdown"]


def test_discover_auto_without_nvml_is_empty_and_static_list_works():
    assert discover(SITE, nvml_loader=lambda: None) == []
    static = dict(
        SITE,
        devices=[{"index": 0, "uuid": "GPU-x", "model": "T4", "memory": 16 << 30}],
        mode="shared",
    )
    (g,) = discover(static)
    assert g.uuid == "GPU-x" and g.max_shared == 2


def test_discover_per_gpu_sharing_override():
    nvml = FakeNVML(
        [{"uuid": "GPU-a", "name": "A", "mem": 1}, {"uuid": "GPU-b", "name": "B", "mem": 1}]
    )
    found = discover(dict(SITE, shared_overrides={"GPU-b": 4, "0": 1}), nvml_loader=lambda: nvml)
    assert [g.max_shared for g in found] == [1, 4]


async def test_exclusive_allocation_and_release():
    a = Allocator(gpus(2))
    x = await a.acquire(("alice", ""), 1)
    y = await a.acquire(("bob", ""), 1)
    assert x != y
    with pytest.raises(GPUsBusy, match="alice, bob"):
        await a.acquire(("carol", ""), 1, wait=False)
    assert a.release(("alice", "")) == x
    assert await a.acquire(("carol", ""), 1, wait=False) == x


async def test_specific_gpu_and_idempotent_acquire():
    a = Allocator(gpus(3))
    assert await a.acquire(("alice", ""), 0, wanted=["GPU-0002"]) == ["GPU-0002"]
    assert await a.acquire(("alice", ""), 1) == ["GPU-0002"]
    with pytest.raises(GPUsBusy):
        await a.acquire(("bob", ""), 1, wanted=["GPU-0002"], wait=False)


async def test_shared_mode_spreads_then_shares():
    a = Allocator(gpus(2, share=2))
    got = [await a.acquire((f"u{i}", ""), 1, wait=False) for i in range(4)]
    assert sorted(u for (u,) in got) == ["GPU-0000", "GPU-0000", "GPU-0001", "GPU-0001"]
    assert got[0] != got[1]  # spread first
    with pytest.raises(GPUsBusy):
        await a.acquire(("u5", ""), 1, wait=False)


async def test_fifo_queue_positions_and_wakeup():
    a = Allocator(gpus(1))
    await a.acquire(("alice", ""), 1)
    seen = {}

    def tracker(name):
        return lambda pos, holders: seen.setdefault(name, []).append((pos, holders))

    bob = asyncio.ensure_future(a.acquire(("bob", ""), 1, on_wait=tracker("bob")))
    await asyncio.sleep(0)
    carol = asyncio.ensure_future(a.acquire(("carol", ""), 1, on_wait=tracker("carol")))
    await asyncio.sleep(0)
    assert seen["bob"][0] == (1, [("alice", "")]) and seen["carol"][-1][0] == 2
    a.release(("alice", ""))
    assert await bob == ["GPU-0000"]
    assert not carol.done() and seen["carol"][-1] == (1, [("bob", "")])
    a.release(("bob", ""))
    assert await carol == ["GPU-0000"]


async def test_fair_share_serves_the_user_with_fewer_recent_gpu_hours_first():
    hours = {"alice": 0.0, "bob": 40.0, "carol": 5.0}
    a = Allocator(gpus(1), priority=lambda user: hours[user])
    await a.acquire(("alice", ""), 1)
    bob = asyncio.ensure_future(a.acquire(("bob", ""), 1))  # first come...
    await asyncio.sleep(0)
    carol = asyncio.ensure_future(a.acquire(("carol", "job/7"), 1))
    await asyncio.sleep(0)
    assert [w["user"] for w in a.snapshot()["queue"]] == ["carol", "bob"]
    assert [w["job"] for w in a.snapshot()["queue"]] == [True, False]
    a.release(("alice", ""))
    assert await carol == ["GPU-0000"] and not bob.done()  # ...but carol used less
    a.release(("carol", "job/7"))
    assert await bob == ["GPU-0000"]
    # among equals, first come; first-come order when there is no priority
    for priority in (lambda user: 0.0, None):
        a = Allocator(gpus(1), priority=priority)
        await a.acquire(("alice", ""), 1)
        b = asyncio.ensure_future(a.acquire(("bob", ""), 1))
        await asyncio.sleep(0)
        c = asyncio.ensure_future(a.acquire(("carol", ""), 1))
        await asyncio.sleep(0)
        a.release(("alice", ""))
        assert await b == ["GPU-0000"] and not c.done()
        c.cancel()


async def test_a_low_usage_newcomer_never_jumps_free_gpus_past_a_waiting_big_request():
    """Fair-share orders the queue; the head still blocks those behind it (no starving of big
    requests): a 1-GPU newcomer with more hours waits behind a 2-GPU waiter."""
    hours = {"alice": 0.0, "bob": 1.0, "dave": 9.0}
    a = Allocator(gpus(2), priority=lambda user: hours[user])
    await a.acquire(("dave", ""), 1)
    big = asyncio.ensure_future(a.acquire(("alice", ""), 2))
    await asyncio.sleep(0)
    with pytest.raises(GPUsBusy):
        await a.acquire(("bob", ""), 1, wait=False)  # one GPU is free, but alice is ahead
    a.release(("dave", ""))
    assert sorted(await big) == ["GPU-0000", "GPU-0001"]


async def test_timeout_and_cancel_leave_the_queue():
    a = Allocator(gpus(1))
    await a.acquire(("alice", ""), 1)
    with pytest.raises(GPUsBusy, match="waited 0s"):
        await a.acquire(("bob", ""), 1, timeout=0.05)
    carol = asyncio.ensure_future(a.acquire(("carol", ""), 1))
    await asyncio.sleep(0)
    a.cancel_waiting(("carol", ""))
    with pytest.raises(asyncio.CancelledError):
        await carol
    assert a.queue == []
    a.release(("alice", ""))
    assert a.holdings == {}


async def test_quota_is_enforced_by_the_claim_itself():
    a = Allocator(gpus(4))
    assert await a.acquire(("alice", "one"), 1, quota=2) == ["GPU-0000"]
    with pytest.raises(
        QuotaExceeded, match=r"2 is over your GPU quota of 2 \(1 already held or requested"
    ):
        await a.acquire(("alice", "two"), 2, quota=2)
    assert ("alice", "two") not in a.holdings and a.queue == []
    # two concurrent spawns of one user: the second sees the first's claim, never a stale snapshot
    results = await asyncio.gather(
        a.acquire(("bob", "x"), 2, quota=2),
        a.acquire(("bob", "y"), 1, quota=2),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["QuotaExceeded", "list"]
    assert a.held_by_user("bob") == 2


async def test_quota_counts_what_the_user_waits_for():
    a = Allocator(gpus(1))
    await a.acquire(("alice", ""), 1)
    waiting = asyncio.ensure_future(a.acquire(("bob", "a"), 1, quota=1))
    await asyncio.sleep(0)
    with pytest.raises(QuotaExceeded, match="quota of 1"):
        await a.acquire(("bob", "b"), 1, quota=1)
    a.release(("alice", ""))
    assert await waiting == ["GPU-0000"]


async def test_rebuild_from_container_labels():
    containers = [
        {
            "Labels": {"gpulab.user": "alice", "gpulab.server": "", "gpulab.gpus": "GPU-0001"},
            "Created": 100,
        },
        {"Labels": {"gpulab.user": "bob", "gpulab.server": "x", "gpulab.gpus": ""}, "Created": 100},
    ]
    a = Allocator(gpus(2))
    a.load(holdings_from_containers(containers))
    assert a.users_of("GPU-0001") == [("alice", "")]
    assert await a.acquire(("carol", ""), 1, wait=False) == ["GPU-0000"]


async def test_randomized_concurrency_no_double_allocation_no_leak():
    rng = random.Random(7)
    a = Allocator(gpus(3))
    peak = []

    async def user(i):
        for _ in range(8):
            holder = (f"u{i}", "")
            try:
                got = await a.acquire(
                    holder, rng.choice([1, 1, 2]), timeout=rng.choice([None, 0.02])
                )
            except GPUsBusy:
                continue
            held = [u for h in a.holdings.values() for u in h.uuids]
            assert len(held) == len(set(held)), "a GPU was handed out twice"
            peak.append(len(held))
            assert set(got) <= set(a.gpus)
            await asyncio.sleep(rng.random() / 200)
            if rng.random() < 0.2:
                continue  # hold it: released below
            a.release(holder)
        a.release((f"u{i}", ""))

    await asyncio.wait_for(asyncio.gather(*(user(i) for i in range(24))), 30)
    assert a.holdings == {} and a.queue == []
    assert max(peak) <= 3


def test_quota_user_entry_wins_then_largest_group_then_default():
    from gpulab.core.gpus.manager import GPUManager

    m = GPUManager(
        {
            "devices": [],
            "quota": {"default": 1, "users": {"alice": 0}, "groups": {"phd": 2, "staff": 4}},
        },
        inventory_source=None,
    )
    assert m.quota_for("alice", ["staff"]) == 0
    assert m.quota_for("bob", ["phd", "staff"]) == 4
    assert m.quota_for("carol", []) == 1
    assert GPUManager({"devices": []}, inventory_source=None).quota_for("x", []) is None


class StaticSource:
    refresh_every = None

    def __init__(self, gpus, holdings=None):
        self.gpus, self.held = gpus, holdings or {}
        self.reads = 0

    async def inventory(self):
        self.reads += 1
        return self.gpus

    async def holdings(self):
        return self.held


async def test_manager_rebuilds_from_its_source_before_anything_is_handed_out():
    from gpulab.core.gpus.manager import GPUManager

    source = StaticSource(gpus(2), {("alice", ""): (["GPU-0000"], 1.0)})
    m = GPUManager({"devices": []}, source)
    await m.ensure_synced()
    assert await m.allocator.acquire(("bob", ""), 1) == ["GPU-0001"], (
        "alice's GPU, known from what runs, is not handed out"
    )
    await m.ensure_synced()
    assert source.reads == 1, "a host's GPUs are read once"
    source.refresh_every = 0
    await m.ensure_synced()
    assert source.reads == 2, "a Swarm's nodes are read again"


def test_admin_table():
    from gpulab_client.gpus import table

    data = {
        "gpus": [
            {
                "index": 0,
                "uuid": "GPU-a",
                "model": "NVIDIA A100",
                "memory_total": 40 << 30,
                "holders": [{"user": "alice", "server": "big", "since": 0}],
            },
            {
                "index": 1,
                "uuid": "GPU-b",
                "model": "NVIDIA A100",
                "memory_total": 40 << 30,
                "holders": [],
            },
        ],
        "queue": [{"user": "bob", "gpus": 1, "since": 0}],
    }
    text = table(data, now=600).splitlines()
    assert text[0].split()[:4] == ["GPU", "MODEL", "MEMORY", "HOLDER"]
    assert "alice/big" in text[1] and "(10 min)" in text[1] and "40 GiB" in text[1]
    assert text[2].split()[0] == "1" and text[2].rstrip().endswith("-")
    assert text[-1] == "waiting: bob (1 GPU)"


def cluster(layout):
    """GPUs on nodes, e.g. {"w1": 2, "w2": 1}."""
    return [
        GPU(i, f"GPU-{node}-{i}", "Test", 16 << 30, node=node)
        for node, n in layout.items()
        for i in range(n)
    ]


async def test_a_request_is_served_on_one_node_the_fullest_that_fits():
    a = Allocator(cluster({"w1": 2, "w2": 1}))
    assert await a.acquire(("alice", ""), 1) == ["GPU-w2-0"], (
        "one GPU from the node that has just one: w1 keeps its pair"
    )
    assert sorted(await a.acquire(("bob", ""), 2)) == ["GPU-w1-0", "GPU-w1-1"]
    assert a.node_of(("bob", "")) == "w1"
    with pytest.raises(GPUsBusy):
        await a.acquire(("carol", ""), 1, wait=False)
    a.release(("alice", ""))
    b = Allocator(cluster({"w1": 2, "w2": 1}))
    await b.acquire(("x", ""), 1, wanted=["GPU-w1-0"])
    with pytest.raises(GPUsBusy):
        await b.acquire(("y", ""), 2, wait=False), "two free GPUs, but on two nodes"
    assert b.largest_request() == 2


async def test_constraints_limit_the_gpus_and_the_largest_request():
    a = Allocator(cluster({"w1": 2, "w2": 1}))
    on_w2 = lambda gpu: gpu.node == "w2"  # noqa: E731
    assert await a.acquire(("alice", ""), 1, where=on_w2) == ["GPU-w2-0"]
    assert a.largest_request(on_w2) == 1 and a.largest_request() == 2


async def test_a_waiter_for_specific_gpus_does_not_block_others():
    a = Allocator(cluster({"w1": 2}))
    await a.acquire(("alice", ""), 1, wanted=["GPU-w1-0"])
    wants_busy = asyncio.ensure_future(a.acquire(("bob", ""), 1, wanted=["GPU-w1-0"]))
    await asyncio.sleep(0)
    assert not wants_busy.done()
    # carol asks for any GPU after bob: GPU-w1-1 is free and bob cannot use it
    assert await asyncio.wait_for(a.acquire(("carol", ""), 1), 1) == ["GPU-w1-1"]
    a.release(("alice", ""))
    assert await wants_busy == ["GPU-w1-0"]


async def test_a_waiter_for_any_gpus_keeps_its_place():
    a = Allocator(cluster({"w1": 2}))
    await a.acquire(("alice", ""), 1)
    big = asyncio.ensure_future(a.acquire(("bob", ""), 2))
    await asyncio.sleep(0)
    small = asyncio.ensure_future(a.acquire(("carol", ""), 1))
    await asyncio.sleep(0)
    assert not big.done() and not small.done(), (
        "the free GPU waits for bob's turn (no starving big requests)"
    )
    a.release(("alice", ""))
    assert sorted(await big) == ["GPU-w1-0", "GPU-w1-1"]
    assert not small.done()
    a.release(("bob", ""))
    assert len(await small) == 1


async def test_inventory_changes_keep_holdings():
    a = Allocator(cluster({"w1": 1, "w2": 1}))
    await a.acquire(("alice", ""), 1, wanted=["GPU-w2-0"])
    a.set_inventory(cluster({"w1": 1}))  # w2 went down
    assert a.holdings[("alice", "")].uuids == ["GPU-w2-0"]
    await a.acquire(("bob", ""), 1)
    with pytest.raises(GPUsBusy):
        await a.acquire(("carol", ""), 1, wait=False)
    a.set_inventory(cluster({"w1": 1, "w2": 1}))  # w2 is back: alice still holds its GPU
    with pytest.raises(GPUsBusy):
        await a.acquire(("carol", ""), 1, wait=False)


async def test_a_gang_is_granted_whole_on_different_nodes_or_waits_holding_nothing():
    a = Allocator(cluster({"n1": 2, "n2": 2, "n3": 2}))
    await a.acquire(("bob", ""), 1, where=lambda g: g.node == "n1")
    tasks = [("alice", "job/1/0"), ("alice", "job/1/1")]
    got = await a.acquire_gang(("alice", "job/1"), tasks, 2)
    nodes = [{a.gpus[u].node for u in uuids} for uuids in got]
    assert nodes == [{"n2"}, {"n3"}] and all(len(u) == 2 for u in got)
    assert a.nodes_that_fit(2) == 3 and a.nodes_that_fit(3) == 0

    # a second gang of 2 x 2 cannot fit (n1 has one free GPU): it waits, holding nothing
    second = [("carol", "job/2/0"), ("carol", "job/2/1")]
    waiting = asyncio.ensure_future(a.acquire_gang(("carol", "job/2"), second, 2))
    await asyncio.sleep(0)
    assert not waiting.done() and not any(t in a.holdings for t in second)
    assert a.snapshot()["queue"] == [
        {"user": "carol", "gpus": 4, "nodes": 2, "since": a.queue[0].enqueued, "job": True}
    ]
    a.release(tasks[0])  # n2 frees, but n1 still has only one: still nothing held
    await asyncio.sleep(0)
    assert not waiting.done() and not any(t in a.holdings for t in second)
    a.release(("bob", ""))  # now n1 and n2 both fit: granted whole
    got = await waiting
    assert sorted({a.gpus[u].node for u in got[0]} | {a.gpus[u].node for u in got[1]}) == [
        "n1",
        "n2",
    ]


async def test_two_gangs_never_hold_each_other_up_and_a_cancelled_gang_leaves_nothing():
    a = Allocator(cluster({"n1": 1, "n2": 1, "n3": 1}))
    await a.acquire(("dave", ""), 1, where=lambda g: g.node == "n1")
    g1 = [("alice", f"job/1/{r}") for r in range(3)]
    g2 = [("bob", f"job/2/{r}") for r in range(3)]
    first = asyncio.ensure_future(a.acquire_gang(("alice", "job/1"), g1, 1))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(a.acquire_gang(("bob", "job/2"), g2, 1))
    await asyncio.sleep(0)
    assert not a.holdings.keys() - {("dave", "")}  # n2 and n3 are free, yet nobody took part
    a.release(("dave", ""))
    assert len(await first) == 3 and not second.done()
    for t in g1:
        a.release(t)
    assert len(await second) == 3
    for t in g2:
        a.release(t)
    third = asyncio.ensure_future(a.acquire_gang(("carol", "job/3"), [("carol", "x/0")] * 4, 1))
    await asyncio.sleep(0)
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third
    assert not a.queue and not a.holdings
    with pytest.raises(QuotaExceeded):
        await a.acquire_gang(("carol", "job/4"), [("carol", "y/0"), ("carol", "y/1")], 1, quota=1)


async def test_a_waiting_job_lets_smaller_requests_behind_it_use_free_gpus():
    """A 4-GPU job of a user with no recent hours is first under fair-share, yet a server behind
    it gets one of the three free GPUs (a job is batch work: it does not hold up the queue)."""
    hours = {"newcomer": 0.0, "dave": 5.0, "erin": 9.0}
    a = Allocator(gpus(4), priority=lambda user: hours[user])
    await a.acquire(("dave", ""), 1)
    job = asyncio.ensure_future(a.acquire(("newcomer", "job/1"), 4))
    await asyncio.sleep(0)
    assert await a.acquire(("erin", ""), 1, wait=False)
    assert not job.done() and a.snapshot()["queue"][0]["user"] == "newcomer"
    a.release(("dave", ""))
    a.release(("erin", ""))
    assert len(await job) == 4
