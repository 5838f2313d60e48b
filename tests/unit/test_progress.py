import asyncio
import json

from gpulab.core.progress import ProgressLog, pull_summary


async def test_follow_yields_in_order_and_ends_with_start():
    log = ProgressLog()

    async def start():
        for i in range(3):
            await asyncio.sleep(0.01)
            log.emit(10 * (i + 1), f"step {i}")

    done = asyncio.ensure_future(start())
    events = [e async for e in log.follow(done)]
    assert [e["message"] for e in events] == ["step 0", "step 1", "step 2"]
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    json.dumps(events)


async def test_threadsafe_emit_from_worker():
    log = ProgressLog()
    loop = asyncio.get_running_loop()
    done = loop.run_in_executor(None, lambda: log.emit_threadsafe(20, "from thread"))
    async for _ in log.follow(done):
        pass
    await asyncio.sleep(0)  # the loop runs the callback the thread scheduled
    assert [e["message"] for e in log.events] == ["from thread"]


def test_pull_summary():
    assert pull_summary({"a": (5, 10), "b": (10, 10)}) == (1, 2, 15, 20)
