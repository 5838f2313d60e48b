"""Checks of the spawner's configuration that span several settings (run when the hub starts).

Single settings are validated as they are set (the trait validators in ``spawner``, with the
same checks as the site file). What is checked here is how they combine, and that configuration
never takes over what gpulab owns (precedence rule 1 in :mod:`.spec`): a problem raises
:class:`ConfigError` naming the setting and saying what to use instead.
"""

from ..core import contract


class ConfigError(ValueError):
    """A configuration problem; ``key`` names the setting, e.g. ``GPUDockerSpawner.environment.NB_USER``."""

    def __init__(self, key, message):
        self.key = key
        super().__init__(f"{key}: {message}")


#: docker-py ``create_host_config`` arguments that decide which devices a container sees.
OWNED_HOST_CONFIG = ("device_requests", "devices", "privileged", "runtime", "device_cgroup_rules")
#: ``create_container`` arguments gpulab builds per user, and the setting to use instead.
OWNED_CREATE = {
    "environment": "Spawner.environment",
    "image": "profiles (site file `profiles:`)",
    "name": "DockerSpawner.name_template",
    "command": "DockerSpawner.cmd",
    "host_config": "DockerSpawner.extra_host_config",
}


def check(
    cls_name,
    *,
    profiles,
    image_configured,
    allowed_images,
    environment,
    extra_create_kwargs,
    extra_host_config,
    volume_targets,
    mount_targets,
):
    """Raise ConfigError for the first problem found. Values are as configured (not per user)."""
    if profiles and image_configured:
        raise ConfigError(
            f"{cls_name}.image",
            "profiles are configured, so each profile names its image; add a profile for this image "
            "(site file `profiles:`) instead of setting the image",
        )
    if profiles and allowed_images:
        raise ConfigError(
            f"{cls_name}.allowed_images",
            "profiles are configured: users choose a profile, not an image; list each image as a profile "
            "(site file `profiles:`) instead of allowed_images",
        )
    if isinstance(environment, dict):
        for name in environment:
            if name in contract.OWNED_ENV:
                raise ConfigError(
                    f"{cls_name}.environment.{name}",
                    "is set by gpulab for each user (identity and GPUs); remove it",
                )
    if isinstance(extra_create_kwargs, dict):
        for key in extra_create_kwargs:
            if key in OWNED_CREATE:
                raise ConfigError(
                    f"{cls_name}.extra_create_kwargs.{key}",
                    f"is built by gpulab for each user; use {OWNED_CREATE[key]} instead",
                )
        for label in extra_create_kwargs.get("labels") or {}:
            if str(label).startswith(contract.LABEL_PREFIX):
                raise ConfigError(
                    f"{cls_name}.extra_create_kwargs.labels.{label}",
                    "gpulab.* labels are gpulab's (its GPU table is rebuilt from them)",
                )
    if isinstance(extra_host_config, dict):
        for key in extra_host_config:
            if key in OWNED_HOST_CONFIG:
                raise ConfigError(
                    f"{cls_name}.extra_host_config.{key}",
                    "would change which devices users see; GPUs are granted per user by gpulab (site file `gpus:`)",
                )
    for key, targets in (("volumes", volume_targets), ("mounts", mount_targets)):
        for target in targets:
            if not isinstance(target, str) or "{" in target:
                continue  # a template, rendered per user; Docker refuses clashes at create
            if target.rstrip("/") in (
                contract.HOME_ROOT,
                contract.SSH_HOST_KEY_DIR,
            ) or target.startswith(contract.HOME_ROOT + "/"):
                raise ConfigError(
                    f"{cls_name}.{key}",
                    f"{target} would cover the user's home or SSH keys, which gpulab mounts itself",
                )
