"""DockerSpawner's own test suite, from its sdist at the installed version, against GPUDockerSpawner.

Both spawners run the same upstream tests here, on the same machine and images; every test that
passes with stock DockerSpawner must pass with gpulab, except those listed (with the reason) in
tests/dockerspawner_suite/adaptations.py. The upstream files are downloaded, never committed. The
image is a stand-in shaped like DockerSpawner's default (harness/images.py): a non-root user with
its own home and start.
"""

import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib import metadata

from harness.hub import REPO
from harness.images import build_stacks
from tests.dockerspawner_suite.adaptations import ADAPTATIONS, ENVIRONMENT

CACHE = os.path.join(REPO, ".cache")


def upstream_tests():
    """The sdist of the installed DockerSpawner, unpacked once into .cache/ (pip download)."""
    version = metadata.version("dockerspawner")
    root = os.path.join(CACHE, f"dockerspawner-{version}")
    if not os.path.isdir(os.path.join(root, "tests")):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"dockerspawner=={version}",
                "-d",
                CACHE,
            ],
            check=True,
            timeout=300,
        )
        with tarfile.open(os.path.join(CACHE, f"dockerspawner-{version}.tar.gz")) as tar:
            tar.extractall(CACHE, filter="data")
    return root


def run_suite(root, target, workdir, image):
    junit = os.path.join(workdir, f"{target}.xml")
    env = dict(
        os.environ,
        GPULAB_DS_TARGET=target,
        GPULAB_TEST_IMAGE=image,
        PYTHONPATH=REPO,
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.dockerspawner_suite.plugin",
            "-o",
            "addopts=",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=module",
            "-o",
            "asyncio_default_test_loop_scope=module",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-q",
            "tests/test_dockerspawner.py",
            "tests/test_deprecations.py",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = os.path.basename(
            case.get("file") or case.get("classname").replace(".", "/") + ".py"
        )
        name = f"{module}::{case.get('name')}"
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        results[name] = "skipped" if skipped else ("failed" if failed else "passed")
    return results, proc.stdout[-6000:] + proc.stderr[-3000:]


def listed(name, table):
    return any(name == key or name.startswith(key + "[") for key in table)


def test_dockerspawner_suite_passes_against_gpulab(tmp_path):
    root = upstream_tests()
    # the stand-in for DockerSpawner's default image is shaped like it: a non-root user with
    # its own home, its own start (not gpulab's image, which only gpulab's start fits)
    image = build_stacks()
    stock, stock_log = run_suite(root, "stock", str(tmp_path), image)
    gpulab, gpulab_log = run_suite(root, "gpulab", str(tmp_path), image)
    passed = {
        t: sorted(n for n, r in res.items() if r == "passed")
        for t, res in (("stock", stock), ("gpulab", gpulab))
    }
    print(
        f"\n[gpulab] DockerSpawner {metadata.version('dockerspawner')} suite: {len(stock)} tests; "
        f"stock passes {len(passed['stock'])}, gpulab passes {len(passed['gpulab'])}"
    )
    assert len(stock) >= 30 and set(stock) == set(gpulab), (
        "both runs collected the same upstream tests"
    )
    regressions = [
        n for n in passed["stock"] if gpulab[n] != "passed" and not listed(n, ADAPTATIONS)
    ]
    assert not regressions, (
        f"pass with DockerSpawner, fail with gpulab: {regressions}\n{gpulab_log}"
    )
    stale = [n for n in gpulab if listed(n, ADAPTATIONS) and gpulab[n] == "passed"]
    assert not stale, f"listed as adaptations but pass: {stale} (update adaptations.py)"
    unexplained = [n for n in stock if stock[n] != "passed" and not listed(n, ENVIRONMENT)]
    assert not unexplained, (
        f"fail with stock DockerSpawner for no listed reason: {unexplained}\n{stock_log}"
    )
