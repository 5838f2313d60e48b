"""Backends: one per ``cluster.mode``, each a folder behind the same protocol (:class:`Backend`).

* ``backends/docker/``: one Docker host (``cluster.mode: single``);
* ``backends/swarm/``: a Docker Swarm of GPU servers (``cluster.mode: swarm``).

Each has the same parts: its spawner class (``spawner.py``, extending the hub's spawner base),
the renderer of specs (``render.py``, pure), the GPU inventory source (``inventory.py``), saved
environments (``saves.py``), networks (``network.py``), the hub's launch (``hub.py``) and, through
:meth:`Backend.run_job`, the one door every short-lived container goes through. What both share
sits beside them: the Docker engine (:mod:`.engine`) and a job as a container on it
(:mod:`.container`).

:func:`select` is the one place that reads ``cluster.mode``; everything else asks the backend.
Backends import only :mod:`gpulab.core` (and, the Swarm's, the container job runner here);
a backend's ``spawner.py`` also extends the hub's spawner base. A unit test keeps it so.
"""

import importlib


class Backend:
    """What one cluster mode provides. Subclasses live in each backend's ``__init__.py``; they are
    cheap to import (the command line, the site checks): the parts load when first used."""

    name = ""  # "docker", "swarm"
    mode = ""  # the cluster.mode it serves
    spawner_class = ""  # dotted path, loaded by JupyterHub
    package = ""
    #: the hub runs on this host as a process (one host), not in a container on a manager (a
    #: Swarm): its images and its proxy are checked here
    hub_on_host = True

    def part(self, name):
        return importlib.import_module(f"{self.package}.{name}")

    def load_spawner_class(self):
        module, _, cls = self.spawner_class.rpartition(".")
        return getattr(importlib.import_module(module), cls)

    @property
    def spawner_section(self):
        """The configuration section of its spawner (``c.GPUDockerSpawner``)."""
        return self.spawner_class.rpartition(".")[2]

    # --- configuration, from a validated site file (pure) ---

    def spawner_traits(self, site):
        """{trait: value} of this backend's own spawner settings."""
        return {}

    def hub_traits(self, site):
        """{section: {trait: value}} this backend needs of JupyterHub beyond the common wiring."""
        return {}

    # --- at run time, for a Deployment (``lab``) ---

    def inventory_source(self, lab):
        raise NotImplementedError

    def saves(self, lab):
        raise NotImplementedError

    def job_image(self, lab):
        """The image of gpulab's helper jobs (backups, archives): one with tar and a shell."""
        raise NotImplementedError

    async def run_job(self, lab, job, on_line=None, **kw):
        """Run a :class:`~gpulab.core.job.JobSpec` to its end; returns a :class:`~gpulab.core.job.JobResult`."""
        raise NotImplementedError

    #: users' GPU jobs (:mod:`gpulab.hub.gpujobs`) run on this backend: it also has ``stop_job``
    #: and ``resume_job`` (what a hub finds of a job after a restart); one host: one container
    #: through ``run_job`` and ``follow_job``; a Swarm (``gang_jobs``): one task per GPU server
    #: through ``job_network`` and ``run_gang``
    gpu_jobs = False
    gang_jobs = False

    def prepare_host(self, lab, api_port):
        """What the hub's host needs before JupyterHub starts (networks, firewall rules); returns
        the address the hub's API binds to."""
        raise NotImplementedError

    # --- admin tooling ---

    def launch_hub(self, site, *, site_file, config_file, replace=False):
        """``gpulab up``: start the hub (returns an exit status; may not return at all)."""
        raise NotImplementedError

    def node_problems(self, client, site):
        """``gpulab check``: [(node, [problem, ...], what is fine)] of the GPU servers (none on one host)."""
        return []


def select(site):
    """The backend for a validated site file: the one place ``cluster.mode`` is read."""
    from .docker import DOCKER
    from .swarm import SWARM

    backends = {b.mode: b for b in (DOCKER, SWARM)}
    return backends[site["cluster"]["mode"]]
