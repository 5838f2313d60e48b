"""A real multi-node Docker Swarm on one machine, for the multi-host tests.

Each node is a Docker-in-Docker container running Debian trixie's Docker 26 (Debian 12's 20.10
rejects services with both a network and a generic resource, moby/moby#44378), started with the
options recorded in the project's notes (the machine lacks CAP_SYS_RESOURCE, so no --privileged):
every capability but SYS_RESOURCE, unconfined seccomp/apparmor/system paths, a writable cgroup
mount and its own --cgroup-parent. GPU servers advertise made-up GPUs as Swarm generic resources
``gpu=GPU-<node>-<n>``, as ``gpulab node setup`` makes real ones advertise theirs.

* nodes reach a TLS registry on this machine (a test CA, trusted by the nodes and by this
  machine's engine through /etc/docker/certs.d/<address>/ca.crt);
* one host directory is mounted at the same path in every node (the lab's NFS export);
* each node's engine socket is also exposed in a host directory, for docker-py from the tests.

Everything carries the cluster's prefix and is removed by :meth:`SwarmCluster.remove`.
"""

import glob
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import docker
import yaml

from gpulab.admin import images

from .hub import DUMMY_AUTH, REPO, TEST_CONFIG, HubClient

NODE_IMAGE = "localhost/gpulab/swarm-node:trixie"
TRIXIE_BASE = "localhost/gpulab/bootstrap:trixie"
NODE_DOCKERFILE = """FROM {base}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      docker.io docker-cli iptables ca-certificates procps && rm -rf /var/lib/apt/lists/*
CMD ["dockerd"]
"""


def build_node_image(client):
    """The node image (trixie + its docker.io), built once and then served from Docker's cache."""
    try:
        client.images.get(NODE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    images.bootstrap_base(tag=TRIXIE_BASE, suite="trixie")
    ctx = tempfile.mkdtemp(prefix="gpulab-node-")
    try:
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(NODE_DOCKERFILE.format(base=TRIXIE_BASE))
        subprocess.run(
            ["docker", "build", "-q", "-t", NODE_IMAGE, ctx],
            check=True,
            capture_output=True,
            timeout=900,
        )
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def free_subnet(client, second=31):
    used = [
        ipaddress.ip_network(c["Subnet"])
        for n in client.networks.list()
        for c in (n.attrs.get("IPAM") or {}).get("Config") or []
        if c.get("Subnet")
    ]
    for third in range(10, 250):
        candidate = ipaddress.ip_network(f"172.{second}.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError("no free subnet for the swarm test network")


def node_labels_for_test_gpus():
    from gpulab.core import contract

    return {contract.NL_GPU_MODEL: "Test-GPU", contract.NL_GPU_ISOLATION: contract.GPU_ISOLATION}


REGISTRY_USER = "gpulab"
REGISTRY_PASSWORD_ENV = "GPULAB_TEST_REGISTRY_PASSWORD"


class SwarmCluster:
    def __init__(self, client, prefix, workers, shared_dir):
        """``workers`` maps a worker name to its number of made-up GPUs, e.g. {"w1": 2, "w2": 1}."""
        self.client = client
        self.prefix = prefix
        self.workers = dict(workers)
        self.shared_dir = shared_dir  # mounted at the same path in every node
        self.state = tempfile.mkdtemp(prefix=f"{prefix}-")
        self.network = None
        self.nodes = {}  # name -> container
        self.addresses = {}  # name -> its address on the network, as last seen
        self.certs_dirs = []
        self.loops = {}  # worker name -> (loop device, its file): a disk of its own (add_worker)

    # --- names ---

    def node_name(self, name):
        return f"{self.prefix}-{name}"

    def gpus_of(self, name):
        return [f"GPU-{name}-{i}" for i in range(self.workers.get(name, 0))]

    def socket(self, name):
        return os.path.join(self.state, name, "docker.sock")

    def engine(self, name):
        """docker-py client of one node's engine (through the socket exposed to the host)."""
        return docker.DockerClient(
            base_url=f"unix://{self.socket(name)}", version="auto", timeout=120
        )

    @property
    def gateway(self):
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    def ip(self, name):
        c = self.nodes[name]
        c.reload()
        address = c.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
        if address:  # a stopped node has none: what it had is kept for start_again
            self.addresses[name] = address
        return address

    # --- lifecycle ---

    def create_network(self):
        """The machines' network (this host is its gateway); returns the gateway address."""
        self.subnet = str(free_subnet(self.client))
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=self.subnet, gateway=self.gateway)]
        )
        self.network = self.client.networks.create(
            self.prefix, driver="bridge", ipam=ipam, labels={"gpulab.test": self.prefix}
        )
        return self.gateway

    def start(self, registry_address, registry_ca):
        """Create the nodes, trust the registry, form the Swarm, label the GPU nodes.

        The manager stays active (a drained node cannot attach the hub's container to an overlay);
        user servers keep off it with the site's ``cluster.constraints: [node.role==worker]``."""
        if self.network is None:
            self.create_network()
        certs = os.path.join(self.state, "certs.d", registry_address)
        os.makedirs(certs)
        shutil.copy(registry_ca, os.path.join(certs, "ca.crt"))
        for name in ["mgr", *self.workers]:
            self._run_node(name)
        mgr = self.engine("mgr")
        mgr.swarm.init(advertise_addr=self.ip("mgr"))
        token = mgr.swarm.attrs["JoinTokens"]["Worker"]
        for name in self.workers:
            self.engine(name).swarm.join(
                remote_addrs=[f"{self.ip('mgr')}:2377"],
                join_token=token,
                advertise_addr=self.ip(name),
            )
        self.wait_ready(len(self.workers) + 1)
        for node in mgr.nodes.list():
            host = node.attrs["Description"]["Hostname"]
            spec = node.attrs["Spec"]
            if host != self.node_name("mgr"):
                # what `gpulab node setup` prints for a GPU server once its runtime gives each task
                # only its own GPUs
                spec.setdefault("Labels", {}).update(node_labels_for_test_gpus())
                node.update(spec)
        for name in self.workers:
            self.apply_egress_rules(name)
        return self

    def apply_egress_rules(self, name, blocked=None):
        """A GPU server's egress rules, as `gpulab node setup --write` applies them (its iptables)."""
        from gpulab.backends.swarm import nodes
        from gpulab.core.site import default

        setup, hooks = nodes.egress_rules(blocked or default("hub.egress_blocked"))
        node = self.nodes[name]
        for args in setup:
            r = node.exec_run(["iptables", "-w", *args])
            if r.exit_code != 0 and args[0] != "-N":
                raise RuntimeError(f"iptables {' '.join(args)} on {name}: {r.output.decode()}")
        for chain, spec in hooks:
            if node.exec_run(["iptables", "-w", "-C", chain, *spec]).exit_code != 0:
                node.exec_run(["iptables", "-w", "-I", chain, "1", *spec])

    def _run_node(self, name):
        node = self.node_name(name)
        os.makedirs(os.path.dirname(self.socket(name)), exist_ok=True)
        args = [
            "dockerd",
            "--host=unix:///var/run/docker.sock",
            "--host=unix:///gpulab-sock/docker.sock",
            f"--cgroup-parent=/{node}",
        ]
        for gpu in self.gpus_of(name):
            args.append(f"--node-generic-resource=gpu={gpu}")
        api = self.client.api
        binds = {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            f"{node}-lib": {"bind": "/var/lib/docker", "mode": "rw"},
            os.path.dirname(self.socket(name)): {"bind": "/gpulab-sock", "mode": "rw"},
            os.path.join(self.state, "certs.d"): {"bind": "/etc/docker/certs.d", "mode": "ro"},
            self.shared_dir: {"bind": self.shared_dir, "mode": "rw"},
        }
        host = api.create_host_config(
            binds=binds,
            cap_add=["ALL"],
            cap_drop=["SYS_RESOURCE"],
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            device_cgroup_rules=["a *:* rwm"],
            tmpfs={"/run": ""},
            network_mode=self.network.name,
        )
        host["MaskedPaths"], host["ReadonlyPaths"] = (
            [],
            [],
        )  # what `--security-opt systempaths=unconfined` means
        created = api.create_container(
            NODE_IMAGE,
            args,
            name=node,
            hostname=node,
            detach=True,
            environment={"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"},
            volumes=[b["bind"] for b in binds.values()],
            host_config=host,
            labels={"gpulab.test": self.prefix},
        )
        api.start(created["Id"])
        self.nodes[name] = self.client.containers.get(created["Id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.engine(name).ping()
                return
            except (docker.errors.DockerException, OSError):
                time.sleep(0.5)
        raise RuntimeError(
            f"node {node} did not start:\n{self.nodes[name].logs()[-3000:].decode(errors='replace')}"
        )

    def wait_ready(self, count, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.engine("mgr").nodes.list()
            if sum(1 for n in nodes if n.attrs["Status"]["State"] == "ready") >= count:
                return nodes
            time.sleep(1)
        raise RuntimeError(f"only {[n.attrs['Status']['State'] for n in nodes]} nodes ready")

    def kill(self, name):
        """A node dies (power cut): its container is killed; its engine is gone. Containers its
        engine paused are thawed first: a power cut ends them too, but a frozen process cannot
        die, and the node's container would not end (its engine made their cgroups under
        ``/<node>`` of this machine's hierarchies)."""
        thaw(self.node_name(name))
        self.nodes[name].kill()

    def node_state(self, name):
        """The node's state as the manager sees it ('ready', 'down', 'unknown', ...)."""
        for node in self.engine("mgr").nodes.list():
            if node.attrs["Description"]["Hostname"] == self.node_name(name):
                return node.attrs["Status"]["State"]
        return None

    def restart(self, name, *, hard=True, down_for=0.0, timeout=120):
        """A GPU server reboots: its container is killed (``hard``, a power cut) or stopped (a
        clean shutdown), stays off ``down_for`` seconds, and starts again on the same engine state
        (the ``<node>-lib`` volume keeps its Swarm membership, so it rejoins by itself) and the
        same address. Its iptables live in the container's network namespace, which a restart
        makes anew: they are applied again, as `gpulab node setup --write` makes them persist.
        Returns once the manager sees it ready again."""
        container = self.nodes[name]
        self.ip(name)
        if hard:
            thaw(self.node_name(name))
            container.kill()
        else:
            container.stop(timeout=20)
        time.sleep(down_for)
        self.start_again(name, timeout)

    def start_again(self, name, timeout=120):
        """A node that was killed or stopped boots again (see :meth:`restart`)."""
        container = self.nodes[name]
        address = self.addresses.get(name)
        container.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.engine(name).ping()
                break
            except (docker.errors.DockerException, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {name}'s engine did not come back") from None
                time.sleep(0.5)
        if address and self.ip(name) != address:
            raise RuntimeError(f"node {name} came back on {self.ip(name)}, not {address}")
        if name in self.workers:
            self.apply_egress_rules(name)
        self.wait_node_ready(name, deadline - time.monotonic())

    def add_worker(self, name, *, disk_bytes):
        """A GPU server without GPUs joins the running Swarm, its Docker data on a file system of
        its own of ``disk_bytes`` (ext4 on a loop device over a sparse file in the cluster's state
        folder): a disk that can be filled. :meth:`remove_worker` takes it all away again."""
        image = os.path.join(self.state, f"{name}-lib.img")
        with open(image, "wb") as f:
            f.truncate(disk_bytes)
        # -m 0: no blocks kept for root (dockerd is root: it would fill those too)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", image], check=True, capture_output=True)
        device = subprocess.run(
            ["losetup", "--find", "--show", image], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.loops[name] = (device, image)
        self.client.volumes.create(
            f"{self.node_name(name)}-lib",
            driver="local",
            driver_opts={"type": "ext4", "device": device},
            labels={"gpulab.test": self.prefix},
        )
        self.workers[name] = 0
        self._run_node(name)
        mgr = self.engine("mgr")
        self.engine(name).swarm.join(
            remote_addrs=[f"{self.ip('mgr')}:2377"],
            join_token=mgr.swarm.attrs["JoinTokens"]["Worker"],
            advertise_addr=self.ip(name),
        )
        self.wait_node_ready(name)
        for node in mgr.nodes.list():
            if node.attrs["Description"]["Hostname"] == self.node_name(name):
                spec = node.attrs["Spec"]
                spec.setdefault("Labels", {}).update(node_labels_for_test_gpus())
                node.update(spec)
        self.apply_egress_rules(name)

    def remove_worker(self, name):
        """A worker leaves the Swarm for good and its machine, disk and loop device go."""
        try:
            self.engine(name).swarm.leave(force=True)
        except (docker.errors.DockerException, OSError):
            pass
        for node in self.engine("mgr").nodes.list():
            if node.attrs["Description"]["Hostname"] == self.node_name(name):
                deadline = time.monotonic() + 60
                while True:  # the manager removes a node once it sees it down
                    try:
                        node.remove(force=True)
                        break
                    except docker.errors.APIError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(1)
        container = self.nodes.pop(name, None)
        if container is not None:
            thaw(self.node_name(name))
            container.remove(force=True, v=True)
        try:
            self.client.volumes.get(f"{self.node_name(name)}-lib").remove(force=True)
        except docker.errors.NotFound:
            pass
        self._free_loop(name)
        remove_cgroups(self.node_name(name))
        self.workers.pop(name, None)

    def _free_loop(self, name):
        device, image = self.loops.pop(name, (None, None))
        if device:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        if image and os.path.exists(image):
            os.unlink(image)

    def wait_node_ready(self, name, timeout=90):
        """Until the node's own engine is back in the Swarm and the manager sees it ready."""
        deadline = time.monotonic() + max(timeout, 1)
        while (
            self.engine(name).info()["Swarm"].get("LocalNodeState") != "active"
            or self.node_state(name) != "ready"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {name} is {self.node_state(name)}, not ready")
            time.sleep(0.5)

    def remove(self):
        for name in ["mgr", *self.workers]:
            thaw(self.node_name(name))  # a paused container would keep its node from ending
        for c in self.client.containers.list(
            all=True, filters={"label": f"gpulab.test={self.prefix}"}
        ):
            c.remove(force=True, v=True)
        for name in ["mgr", *self.workers]:
            try:
                self.client.volumes.get(f"{self.node_name(name)}-lib").remove(force=True)
            except docker.errors.NotFound:
                pass
        for name in list(self.loops):
            self._free_loop(name)
        if self.network is not None:
            self.network.remove()
        shutil.rmtree(self.state, ignore_errors=True)
        for name in ["mgr", *self.workers]:
            remove_cgroups(self.node_name(name))


def thaw(parent):
    """Thaw every frozen cgroup under ``/<parent>`` (cgroup v1's freezer, or v2's cgroup.freeze)."""
    for state in glob.glob(f"/sys/fs/cgroup/freezer/{parent}/**/freezer.state", recursive=True):
        with open(state) as f:
            frozen = f.read().strip() != "THAWED"
        if frozen:
            with open(state, "w") as f:
                f.write("THAWED")
    for freeze in glob.glob(f"/sys/fs/cgroup/{parent}/**/cgroup.freeze", recursive=True):
        with open(freeze) as f:
            frozen = f.read().strip() == "1"
        if frozen:
            with open(freeze, "w") as f:
                f.write("0")


def remove_cgroups(parent):
    """A node's engine made its containers' cgroups under its ``--cgroup-parent`` (``/<node>``)
    in this machine's hierarchies; with the node gone they are empty and go (deepest first)."""
    for top in [*glob.glob("/sys/fs/cgroup/*/"), "/sys/fs/cgroup/"]:
        root = os.path.join(top, parent)
        if not os.path.isdir(root):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
            for _ in range(50):  # a killed container's processes may take a moment to go
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


class SwarmHub(HubClient):
    """A gpulab hub in swarm mode, started as ``gpulab up`` starts it: a container on the manager
    (gpulab.backends.swarm.hub.run_hub), configured by the committed jupyterhub_config.py plus the test
    wrapper (a test login and an API token), with the same REST helpers as harness.hub.Hub."""

    def __init__(
        self, cluster, registry, *, name, site_overrides=None, extra_config="", extra_profiles=()
    ):
        self.cluster = cluster
        self.name = name
        self.registry = registry
        shared = cluster.shared_dir
        self.conf_dir = os.path.join(shared, f"{name}-conf")
        os.makedirs(self.conf_dir, exist_ok=True)
        self.token = os.urandom(16).hex()
        self.password = os.urandom(9).hex()
        self.client = cluster.client
        self.site = {
            "hub": {
                "name": name,
                "bind_url": "http://0.0.0.0:8000",
                "state_dir": os.path.join(shared, f"{name}-state"),
                "start_timeout": 240,
            },
            "auth": {"admin_users": ["admin"]},
            # encrypted: false only because this machine's kernel has no IPsec ESP (CONFIG_INET_ESP is
            # not set: dockerd logs "Failed Adding ... SA ... function not implemented"); labs keep it on
            "cluster": {
                "mode": "swarm",
                "registry": registry,
                "registry_auth": {"username": REGISTRY_USER, "password_env": REGISTRY_PASSWORD_ENV},
                "shared_root": shared,
                "constraints": ["node.role==worker"],
                "encrypted": False,
            },
            "storage": {"home": os.path.join(shared, "home", "{username}")},
            "ssh": {"port_base": 0},
            "profiles": [
                {
                    "name": "gpu",
                    "image": "localhost/gpulab/base:latest",
                    "gpus": 1,
                    "max_gpus": 2,
                    "mem_limit": "1G",
                    "shm_size": "128M",
                },
                {
                    "name": "cpu",
                    "image": "localhost/gpulab/base:latest",
                    "gpus": 0,
                    "max_gpus": 0,
                    "mem_limit": "1G",
                },
                {
                    "name": "big",
                    "image": "localhost/gpulab/base:latest",
                    "gpus": 0,
                    "max_gpus": 4,
                    "mem_limit": "1G",
                },
            ],
            "gpus": {"wait_timeout": 300},
        }
        self.site["profiles"] += list(extra_profiles)
        for key, value in (site_overrides or {}).items():
            self.site[key] = value
        with open(os.path.join(self.conf_dir, "gpulab.yaml"), "w") as f:
            yaml.safe_dump(self.site, f)
        shutil.copy(
            os.path.join(REPO, "jupyterhub_config.py"),
            os.path.join(self.conf_dir, "jupyterhub_config.py"),
        )
        with open(os.path.join(self.conf_dir, "test_jupyterhub_config.py"), "w") as f:
            f.write(
                TEST_CONFIG.format(
                    config="/etc/gpulab/jupyterhub_config.py",
                    auth=DUMMY_AUTH.format(password=self.password),
                    token=self.token,
                )
            )
            f.write(extra_config)

    def start(self, timeout=180):
        from gpulab.backends.swarm.hub import run_hub
        from gpulab.core.site.model import validate_site

        site = validate_site(self.site)
        mgr = self.cluster.engine("mgr")
        self.container = run_hub(
            mgr,
            site,
            config_dir=self.conf_dir,
            config_file="test_jupyterhub_config.py",
            image=f"{self.registry}/gpulab/hub:latest",
            replace=True,
        )
        self.url = f"http://{self.cluster.ip('mgr')}:8000"
        self.wait_up(timeout)
        return self

    def wait_up(self, timeout=180):
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            self.container.reload()
            if (
                self.container.status == "exited"
                or self.container.attrs.get("RestartCount", 0) >= 2
            ):
                break  # it stopped, or keeps stopping (restart policy): the log says why
            time.sleep(1)
        raise RuntimeError(f"the hub did not come up:\n{self.log_tail()}")

    def restart(self):
        """A hub restart as `gpulab up --replace` does it: a new container on the same state."""
        self.start()

    def log_tail(self, n=80):
        try:
            return self.container.logs(tail=n).decode(errors="replace")
        except docker.errors.DockerException as e:
            return f"(no logs: {e})"

    # --- what runs where ---

    def services(self, username=None):
        labels = [f"gpulab.deployment={self.name}"] + (
            [f"gpulab.user={username}"] if username else []
        )
        return self.cluster.engine("mgr").api.services(filters={"label": labels})

    def task(self, username):
        """(node name, task) of the user's running task."""
        mgr = self.cluster.engine("mgr").api
        (service,) = self.services(username)
        tasks = [
            t
            for t in mgr.tasks(filters={"service": service["ID"]})
            if t["Status"]["State"] == "running"
        ]
        (task,) = tasks
        node = mgr.inspect_node(task["NodeID"])["Description"]["Hostname"]
        return node, task

    def container_of(self, username):
        """The docker-py container of the user's task, on whichever node runs it."""
        node, task = self.task(username)
        short = node.removeprefix(self.cluster.prefix + "-")
        return short, self.cluster.engine(short).containers.get(
            task["Status"]["ContainerStatus"]["ContainerID"]
        )

    def cleanup(self):
        mgr = self.cluster.engine("mgr")
        for s in self.services():
            mgr.api.remove_service(s["ID"])
        try:
            mgr.containers.get(f"{self.name}-hub").remove(force=True)
        except docker.errors.NotFound:
            pass


class SwarmLab:
    """The whole multi-host set-up, for tests and benchmarks: a registry with a test CA, this
    machine's engine trusting it, the images pushed, the Swarm formed, the hub started.

        with SwarmLab(client, "glsw1234", shared_dir) as lab:
            lab.hub.spawn(...)
    """

    def __init__(
        self,
        client,
        prefix,
        shared_dir,
        workers=None,
        extra_config="",
        extra_images=(),
        extra_profiles=(),
    ):
        """``extra_images``: more local images to push to the registry (a lab's own), for
        ``extra_profiles`` of the hub."""
        self.client = client
        self.prefix = prefix
        self.extra_images = list(extra_images)
        self.extra_profiles = list(extra_profiles)
        self.cluster = SwarmCluster(client, prefix, workers or {"w1": 2, "w2": 1}, shared_dir)
        self.extra_config = extra_config
        self.registry = self.hub = self.certs = None
        self.docker_config = self.ca_cert = self.ca_dir = None

    def __enter__(self):
        from .hub import free_port
        from .registry import Registry
        from .tlsca import TestCA

        try:
            build_node_image(self.client)
            ca = TestCA()
            self.ca_cert, self.ca_dir = ca.cert, ca.dir
            gateway = self.cluster.create_network()
            # the lab's registry asks for a login; the password is in the environment, as a
            # lab's EnvironmentFile puts it (the hub container gets it from `gpulab up`)
            password = os.environ.setdefault(REGISTRY_PASSWORD_ENV, secrets.token_urlsafe(16))
            self.registry = Registry(
                host=gateway,
                port=free_port(),
                tls=ca.issue("registry", ips=[gateway]),
                users={REGISTRY_USER: password},
            ).start()
            self.certs = f"/etc/docker/certs.d/{self.registry.address}"  # this machine's engine trusts the test CA there
            os.makedirs(self.certs, exist_ok=True)
            shutil.copy(ca.cert, os.path.join(self.certs, "ca.crt"))
            # `docker login` as an admin does before `gpulab images push`, into a config of this
            # lab's own (this machine's root keeps no test credentials)
            self.docker_config = tempfile.mkdtemp(prefix=f"{self.prefix}-dockercfg-")
            env = dict(os.environ, DOCKER_CONFIG=self.docker_config)
            login = subprocess.run(
                [
                    "docker",
                    "login",
                    "--username",
                    REGISTRY_USER,
                    "--password-stdin",
                    self.registry.address,
                ],
                input=password,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if login.returncode != 0:
                raise RuntimeError(f"docker login to the test registry failed:\n{login.stderr}")
            gpulab = os.path.join(os.path.dirname(sys.executable), "gpulab")
            push = subprocess.run(
                [gpulab, "images", "push", "--registry", self.registry.address, "base", "hub"],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if push.returncode != 0:
                raise RuntimeError(f"gpulab images push failed:\n{push.stdout}{push.stderr}")
            for tag in self.extra_images:  # a lab's own image: docker tag and docker push
                from gpulab.core.site.facts import registry_name

                target = registry_name(tag, self.registry.address)
                for argv in (["docker", "tag", tag, target], ["docker", "push", target]):
                    done = subprocess.run(
                        argv, env=env, capture_output=True, text=True, timeout=900
                    )
                    if done.returncode != 0:
                        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
            # what the admin reads: each pushed image by its digest
            self.pushed = [
                line.split(": ", 1)[1]
                for line in push.stdout.splitlines()
                if line.startswith("gpulab images push: ")
            ]
            self.cluster.start(self.registry.address, ca.cert)
            self.hub = SwarmHub(
                self.cluster,
                self.registry.address,
                name=f"{self.prefix}h",
                extra_config=self.extra_config,
                extra_profiles=self.extra_profiles,
            ).start()
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        if self.hub is not None:
            self.hub.cleanup()
        self.cluster.remove()
        if self.registry is not None:
            self.registry.stop()
            # the push tagged this engine's images with the registry's name: only the tags go
            for image in self.client.images.list():
                for tag in image.tags:
                    if tag.startswith(f"{self.registry.address}/"):
                        self.client.images.remove(tag, noprune=True)
        if self.certs:
            shutil.rmtree(self.certs, ignore_errors=True)
        if self.docker_config:
            shutil.rmtree(self.docker_config, ignore_errors=True)
        if self.ca_dir:
            shutil.rmtree(self.ca_dir, ignore_errors=True)
        return False
