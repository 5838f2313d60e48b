"""What differs when DockerSpawner's own test suite runs against GPUDockerSpawner: the one list.

Each entry is a test id prefix of the upstream suite and why gpulab answers differently. The
runner (``tests/docker/test_dockerspawner_suite.py``) fails when a test that passes with stock
DockerSpawner fails with gpulab and is not listed here, and also when a listed test would pass
(the list must stay true).
"""

#: Tests that pass with stock DockerSpawner and are expected to fail with GPUDockerSpawner.
ADAPTATIONS = {
    # none: with no `profiles` configured, GPUDockerSpawner behaves as DockerSpawner for every
    # setting the suite exercises (image, allowed_images and the image option and form,
    # pull_policy, cpu/mem limits, post_start_cmd, remove, escaping, deprecated aliases).
}

_JH6 = (
    "DockerSpawner 14.0.0's test makes a named server with `user.spawners[name]`, which JupyterHub 6 "
    'no longer allows ("orm_spawner not found": named servers are made through the API): it fails '
    "with stock DockerSpawner too, until DockerSpawner's suite follows JupyterHub 6"
)

#: Tests that need something this CI machine does not have, or that DockerSpawner's suite has not
#: yet adapted to the JupyterHub gpulab runs, for both spawners alike.
ENVIRONMENT = {
    "test_dockerspawner.py::test_name_collision": _JH6,
    "test_dockerspawner.py::test_start_stop": _JH6,
    "test_dockerspawner.py::test_legacy_escape": _JH6,
    "test_dockerspawner.py::test_image_pull_policy": (
        "pulls busybox from Docker Hub, which is not reachable here; pull_policy is tested against a "
        "local registry in tests/docker/test_pull_policy.py"
    ),
}
