"""Adapter that runs DockerSpawner's own test suite (from its PyPI sdist) against GPUDockerSpawner.

Used as ``pytest -p tests.dockerspawner_suite.plugin <sdist>/tests`` by the runner test; the
upstream files are downloaded at test time and never copied into this repository. This module is
ours: it provides the fixtures the suite expects (a real JupyterHub in-process, whose API the
containers reach on a test network, as gpulab's hub is reached) and, with
``GPULAB_DS_TARGET=gpulab``, puts ``GPUDockerSpawner`` where the suite imports ``DockerSpawner``.
The images the suite names are local tags of the stand-in the runner names (GPULAB_TEST_IMAGE: a
non-root image shaped like DockerSpawner's default; no registry is reachable).
"""

import ast
import glob
import ipaddress
import os
import re
import secrets

import docker
import dockerspawner
import pytest
from jupyterhub.tests import conftest as jh
from jupyterhub.tests.mocking import MockHub
from jupyterhub.utils import random_port

TARGET = os.environ.get("GPULAB_DS_TARGET", "gpulab")
LOCAL_IMAGE = os.environ.get("GPULAB_TEST_IMAGE", "localhost/gpulab/base:latest")
RUN = f"dstest-{TARGET}-{secrets.token_hex(3)}"
IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+$")
SKIP_FOR_TAGS = {"test_image_pull_policy"}  # its images must stay absent: it tests pulling

if TARGET == "gpulab":
    from gpulab.backends.docker.spawner import GPUDockerSpawner

    dockerspawner.DockerSpawner = (
        GPUDockerSpawner  # what `from dockerspawner import DockerSpawner` gets
    )
    SPAWNER = GPUDockerSpawner
else:
    SPAWNER = dockerspawner.DockerSpawner

# the fixtures the suite uses, from JupyterHub's own test package (installed with jupyterhub)
user = jh.user
username = jh.username
ssl_tmpdir = jh.ssl_tmpdir
cleanup_after = jh.cleanup_after


def pytest_collection_modifyitems(items):
    # module-scoped event loops, as JupyterHub's tests use: JupyterHub 5 set them here, JupyterHub
    # 6 through pytest-asyncio's settings (the runner passes asyncio_default_test_loop_scope)
    hook = getattr(jh, "pytest_collection_modifyitems", None)
    if hook is not None:
        hook(items)


def image_refs(test_dir):
    """Image names the suite's tests use (string constants of the form name:tag)."""
    refs = {SPAWNER.image.default_value} if hasattr(SPAWNER, "image") else set()
    refs.add(dockerspawner.DockerSpawner.class_traits()["image"].default_value)
    for path in glob.glob(os.path.join(test_dir, "test_*.py")):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name in SKIP_FOR_TAGS
            ):
                for inner in ast.walk(node):
                    inner._gpulab_skip = True
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and IMAGE_REF.match(node.value)
                and not getattr(node, "_gpulab_skip", False)
            ):
                refs.add(node.value)
    return sorted(refs)


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env(version="auto")
    client.ping()
    return client


@pytest.fixture(scope="session", autouse=True)
def test_network(docker_client, request):
    used = [
        ipaddress.ip_network(c["Subnet"])
        for n in docker_client.networks.list()
        for c in (n.attrs.get("IPAM") or {}).get("Config") or []
        if c.get("Subnet")
    ]
    subnet = next(
        ipaddress.ip_network(f"172.31.{i}.0/24")
        for i in range(100, 250)
        if not any(ipaddress.ip_network(f"172.31.{i}.0/24").overlaps(u) for u in used)
    )
    gateway = str(next(subnet.hosts()))
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)]
    )
    net = docker_client.networks.create(
        RUN, driver="bridge", ipam=ipam, labels={"gpulab.deployment": RUN}
    )
    yield {"name": RUN, "gateway": gateway}
    for c in docker_client.containers.list(all=True, filters={"network": RUN}):
        c.remove(force=True, v=True)
    for c in docker_client.containers.list(all=True, filters={"name": "dockerspawner-test"}):
        c.remove(force=True, v=True)
    for v in docker_client.volumes.list(filters={"label": f"gpulab.deployment={RUN}"}):
        v.remove(force=True)
    net.remove()


@pytest.fixture(scope="session")
def suite_images(docker_client, request):
    refs = image_refs(str(request.config.rootpath / "tests"))
    yield refs
    for ref in refs:  # the tags only; the image stays
        try:
            docker_client.images.remove(ref, noprune=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture(autouse=True)
def local_images(docker_client, suite_images):
    """Tag the local image under every name the suite uses, before each test (a test may remove one)."""
    image = docker_client.images.get(LOCAL_IMAGE)
    for ref in suite_images:
        repo, tag = ref.rsplit(":", 1)
        image.tag(repo, tag)


@pytest.fixture(scope="module")
async def app(request, ssl_tmpdir, test_network):
    """A real JupyterHub in this process; its API listens on the test network's gateway."""
    hub = MockHub.instance(hub_ip=test_network["gateway"], hub_port=random_port())
    request.addfinalizer(lambda: (MockHub.clear_instance(), hub.stop()))
    await hub.initialize([])
    await hub.start()
    return hub


@pytest.fixture
def named_servers(app, monkeypatch):
    monkeypatch.setitem(app.tornado_settings, "allow_named_servers", True)
    monkeypatch.setitem(app.tornado_settings, "named_server_limit_per_user", 0)


@pytest.fixture
def dockerspawner_configured_app(app, named_servers, test_network, monkeypatch):
    """The hub with the spawner under test, as a lab would configure it on one host."""
    cfg = app.config.DockerSpawner
    monkeypatch.setitem(app.tornado_settings, "spawner_class", SPAWNER)
    for key, value in {
        "prefix": "dockerspawner-test",
        "network_name": test_network["name"],
        "use_internal_ip": True,
        "remove": True,
    }.items():
        monkeypatch.setitem(cfg, key, value)
    if TARGET == "gpulab":
        monkeypatch.setitem(app.config.GPUDockerSpawner, "deployment", RUN)
    else:
        # gpulab's image needs a login name; gpulab's spawner gives one, stock DockerSpawner does not
        monkeypatch.setitem(
            cfg,
            "environment",
            {
                "NB_USER": "jovyan",
                "NB_UID": "1000",
                "NB_GID": "100",
                "NVIDIA_VISIBLE_DEVICES": "void",
            },
        )
    monkeypatch.setitem(app.config.Spawner, "start_timeout", 120)
    monkeypatch.setitem(app.config.Spawner, "http_timeout", 120)
    yield app
