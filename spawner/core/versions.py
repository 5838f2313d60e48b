"""Version floors above every advisory known when this release was made, in one place.

``HUB``: the hub's own packages (``setup.py`` reads this file). ``IMAGE``: what the user images
install next to the hub's JupyterHub version; ``gpulab images build`` passes them to the build, and
a test checks a built image against them. Docker's layer cache would otherwise keep an old ``pip
install`` forever: the build also passes ``PIP_REFRESH`` (the ISO week by default, ``--refresh``
for now), so a rebuild picks up new releases at least weekly.

Advisories behind the floors: JupyterHub < 6.1.0 (5.5.3 on the 5.5 line); jupyter-server < 2.14.1 (CVE-2024-35178);
JupyterLab < 4.2.5 and Notebook < 7.2.2 (CVE-2024-43805); jupyter-server-proxy < 4.2.0
(CVE-2024-28179, CVE-2024-35225); tornado < 6.5 (CVE-2024-52804, CVE-2025-47287); Jinja2 < 3.1.6
(CVE-2025-27516); urllib3 < 2.5 (CVE-2025-50181/50182); requests < 2.32.4 (CVE-2024-47081).
"""

HUB = {
    # 6.1.1: the fixes of 6.1.0's advisories (GHSA-hx46-2cv3-mh6g, a denial of service through
    # spawn options, among them) and of its token-length regression; gpulab's own login page
    # replaces NativeAuthenticator 1.3's, which JupyterHub 6 broke (gpulab.hub.auth)
    "jupyterhub": ">=6.1.1,<7",
    "tornado": ">=6.5",
    "jinja2": ">=3.1.6",
    "urllib3": ">=2.5",
    "requests": ">=2.32.4",
    "cryptography": ">=42",  # a multi-node job's own SSH key (gpulab.hub.gpujobs)
}

IMAGE = {
    "jupyter-server": ">=2.14.2",
    # < 5 / < 8: gpulab's notices extension is written by hand against JupyterLab 4's loader
    # (tests/docker/test_labextension.py fails when an image gets a JupyterLab it was not checked with)
    "jupyterlab": ">=4.2.5,<5",
    "notebook": ">=7.2.2,<8",
    "jupyter-server-proxy": ">=4.2.0",
    "tornado": ">=6.5",
    "jinja2": ">=3.1.6",
    "urllib3": ">=2.5",
    "requests": ">=2.32.4",
    "tensorboard": ">=2.16",
    "papermill": ">=2.6",  # a notebook run as a GPU job (gpulab-client job submit --notebook)
}


def requirements(floors):
    return [f"{name}{spec}" for name, spec in floors.items()]
