"""Real Docker, real hub. These tests fail (never skip) when the engine or image is missing."""

import os
import shutil

import docker
import pytest

from harness import localhost
from harness.hub import BASE_IMAGE, REPO, Hub

localhost.install()  # alice.localhost -> 127.0.0.1 in this test process (per-user subdomain hubs)

ARTIFACTS = os.path.join(REPO, "test-artifacts")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/docker" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.session.gpulab_failed = True
    return report


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except Exception as e:
        pytest.fail(
            f"Docker engine not reachable ({e}). The Docker tests need one: run `make test`, which starts it."
        )
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"image {BASE_IMAGE} is missing: run `gpulab images build --bootstrap-base base` (make test does)"
        )
    return client


def _save_artifacts(hub, name):
    out = os.path.join(ARTIFACTS, name)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(hub.log_path):
        shutil.copy(hub.log_path, os.path.join(out, "hub.log"))
    for c in hub.containers():
        with open(os.path.join(out, f"{c.name}.log"), "wb") as f:
            f.write(c.logs())
    print(f"\n[gpulab] hub and container logs saved in {out}")


@pytest.fixture(scope="module")
def make_hub(request, docker_client, tmp_path_factory):
    """Start hubs with site-file overrides; all are stopped and cleaned at module end."""
    hubs = []

    def make(site_overrides=None, start=True, extra_config="", site_auth=False, subdomains=False):
        h = Hub(
            tmp_path_factory.mktemp("hub"),
            docker_client,
            site_overrides=site_overrides,
            extra_config=extra_config,
            site_auth=site_auth,
            subdomains=subdomains,
        )
        hubs.append(h)
        return h.start() if start else h

    yield make
    for h in hubs:
        h.stop()
        if getattr(request.session, "gpulab_failed", False):
            _save_artifacts(h, h.name)
        h.cleanup()


@pytest.fixture(scope="module")
def hub(make_hub):
    return make_hub()


@pytest.fixture(scope="session", autouse=True)
def nothing_is_left_behind(docker_client):
    """The run ends with nothing of a test deployment left on this machine: no container, volume,
    network, image or tag, Swarm service, temporary folder, cgroup, firewall chain or rule, or
    mount that was not there before it (set up first, so checked after every other clean-up)."""
    from harness import leaks

    before = leaks.snapshot(docker_client)
    yield
    left = leaks.left_behind(before, leaks.snapshot(docker_client))
    if left:
        pytest.fail(f"the tests left behind:\n{leaks.describe(left)}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def stand_in_images_go_at_the_end(docker_client, nothing_is_left_behind):
    """The stand-ins for a lab's own images the tests build (harness/images.py) are removed when
    the run ends; BuildKit's cache makes the next run's build quick."""
    yield
    from harness.images import MPI, STACKS, STACKS_SSHD

    for tag in (STACKS, STACKS_SSHD, MPI):
        try:
            docker_client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
