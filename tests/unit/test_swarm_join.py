"""The hub's container joins a user's overlay while Swarm schedules the service: a failed join
ends the start with a message naming the network, as soon as it is known."""

import asyncio
import concurrent.futures
import types

import docker
import pytest

from gpulab.backends.swarm.spawner import GPUSwarmSpawner


def _spawner(future):
    return types.SimpleNamespace(_joining=future, user_network=lambda: "lab-user-alice")


def _failed(message):
    f = concurrent.futures.Future()
    f.set_exception(docker.errors.APIError("connect", explanation=message))
    return f


def test_a_join_still_running_is_not_waited_for_until_the_task_runs():
    pending = concurrent.futures.Future()
    s = _spawner(pending)
    asyncio.run(GPUSwarmSpawner.hub_joined(s, waiting=False))
    assert s._joining is pending  # still to be awaited when the task runs
    pending.set_result(None)
    asyncio.run(GPUSwarmSpawner.hub_joined(s))
    assert s._joining is None


def test_a_failed_join_is_a_500_naming_the_network_and_the_engines_answer():
    s = _spawner(_failed("container not found"))
    with pytest.raises(Exception) as e:
        asyncio.run(GPUSwarmSpawner.hub_joined(s, waiting=False))
    assert getattr(e.value, "status_code", None) == 500
    assert "lab-user-alice" in str(e.value) and "container not found" in str(e.value)
    assert s._joining is None  # told once


def test_no_join_when_the_user_has_no_network_of_their_own():
    s = types.SimpleNamespace()
    asyncio.run(GPUSwarmSpawner.hub_joined(s))  # a spawner restored after a hub restart
