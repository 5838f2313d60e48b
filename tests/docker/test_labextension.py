"""gpulab's JupyterLab piece (hooks/python/labextension: the GPU notices with a Keep button) is a
federated extension written by hand against JupyterLab 4's loader, so it needs no build. The
image's JupyterLab must list it as enabled and OK, and be the JupyterLab that loader contract is
JupyterLab 4's: a JupyterLab 5 in the image fails here first (the version floors cap it, see
gpulab.core.versions); the Chromium test in test_reclaim.py shows it working in a real browser."""

import re

from gpulab.core import versions
from harness import dockerrun
from harness.hub import BASE_IMAGE

VENV = "/opt/gpulab/venv/bin"


def run(docker_client, *argv):
    out = dockerrun.output(
        docker_client, BASE_IMAGE, list(argv), entrypoint=[], stderr=True, user="65534"
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", out.decode())  # without the terminal's colours


def test_the_images_jupyterlab_loads_the_notices_extension(docker_client):
    listed = run(docker_client, f"{VENV}/jupyter", "labextension", "list")
    assert re.search(r"gpulab-notices v\S+ enabled\s+\S*OK", listed), listed


def test_the_images_jupyterlab_is_the_one_the_extension_was_written_for(docker_client):
    version = run(
        docker_client, f"{VENV}/python3", "-c", "import jupyterlab; print(jupyterlab.__version__)"
    ).strip()
    assert version.split(".")[0] == "4", (
        f"the image has JupyterLab {version}: check hooks/python/labextension against its loader "
        "(or build it with @jupyterlab/builder) before allowing it in gpulab.core.versions"
    )
    assert "<5" in versions.IMAGE["jupyterlab"]
