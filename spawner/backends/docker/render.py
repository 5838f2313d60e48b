"""A user server's spec to Docker arguments on one host: the one place a spec becomes a container. Pure.

:func:`create_arguments`: a user server's :class:`~gpulab.core.spec.ContainerSpec` as the keyword
  arguments of docker-py's ``APIClient.create_container`` and ``create_host_config``, the way
  DockerSpawner builds them (so every DockerSpawner setting keeps its meaning), with the spec's
  contents added and the admin's ``extra_create_kwargs`` / ``extra_host_config`` merged last
  (precedence rule 2 in :mod:`gpulab.core.spec`; keys that would undo isolation were refused at
startup, see :mod:`gpulab.hub.crosscheck`).

The hardening comes from :func:`gpulab.backends.container.held`, as a job's does: a job is held
exactly like a server.
"""

from ...core import contract
from ..container import cpu_quota, docker_mount, gpu_device_requests, held


def deep_merge(dest, src):
    """Merge ``src`` into ``dest`` (dicts recursively, everything else replaced); returns ``dest``."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dest.get(key), dict):
            deep_merge(dest[key], value)
        else:
            dest[key] = value
    return dest


def create_arguments(
    spec,
    *,
    port,
    use_internal_ip=True,
    host_ip="127.0.0.1",
    volume_mount_points=(),
    volume_binds=None,
    admin_mounts=(),
    links=None,
    extra_create=None,
    extra_host=None,
):
    """``(create_kwargs, host_config_kwargs)`` for one user server.

    ``volume_*``, ``admin_mounts``, ``links`` and the ``extra_*`` dicts are DockerSpawner's own
    settings (``volumes``, ``mounts``, ``links``, ``extra_create_kwargs``, ``extra_host_config``),
    already rendered for this user.
    """
    extra_create = extra_create or {}
    extra_host = extra_host or {}
    create = {
        "image": spec.image,
        "environment": dict(spec.env),
        "volumes": list(volume_mount_points),
        "name": spec.name,
        "command": list(spec.command),
        "labels": dict(spec.labels),
        "working_dir": spec.working_dir or None,
        "ports": {f"{port}/tcp": None, **{f"{p.container_port}/tcp": None for p in spec.ports}},
    }
    if spec.entrypoint:
        create["entrypoint"] = list(spec.entrypoint)
    if spec.user:
        create["user"] = spec.user
    deep_merge(create, extra_create)

    host = {
        # never removed by the engine on its own: DockerSpawner's ``remove`` is done by the spawner
        # when the server stops (the hub notices a server that ended and stops it). An engine
        # before 24.0.8 (Debian 12's 20.10) removes auto-remove containers when it restarts, even
        # with live-restore (moby#46308): every running server would be lost at an engine upgrade.
        "auto_remove": False,
        "binds": dict(volume_binds or {}),
        "links": links,
        "mounts": list(admin_mounts) + [docker_mount(m) for m in spec.mounts],
        "device_requests": gpu_device_requests(spec.gpus.uuids) or None,
        "sysctls": dict(spec.sysctls),
        **held(spec.capabilities, spec.no_new_privileges, spec.hardening),
    }
    if spec.init:
        host["init"] = True
    if spec.mem_limit is not None:
        host["mem_limit"] = spec.mem_limit
    if spec.cpu_limit is not None:
        host.update(cpu_quota(spec.cpu_limit, extra_host.get("cpu_period", 100_000)))
    if spec.shm_size:
        host["shm_size"] = spec.shm_size
    bindings = {p.container_port: (p.host_ip, p.host_port) for p in spec.ports}
    if not use_internal_ip:
        bindings[port] = (host_ip,)
    if bindings:
        host["port_bindings"] = bindings
    deep_merge(host, extra_host)
    host.setdefault("network_mode", spec.network or None)
    if host["network_mode"] is None:
        del host["network_mode"]
    return create, host


def parse_gpu_label(container):
    """The GPUs an existing container was made with (its ``gpulab.gpus`` label), from inspect JSON."""
    return contract.parse_gpu_list(
        (container.get("Config") or {}).get("Labels", {}).get(contract.L_GPUS)
    )
