import copy

import pytest
import yaml

from gpulab.core.site.model import load_site, validate_site
from gpulab.core.site.schema import ConfigError, parse_size

MINIMAL = {
    "auth": {"admin_users": ["admin"]},
    "profiles": [{"name": "base", "image": "localhost/gpulab/base:latest"}],
}


def site(**changes):
    raw = copy.deepcopy(MINIMAL)
    raw.update(changes)
    return raw


def error_of(raw):
    with pytest.raises(ConfigError) as info:
        validate_site(raw)
    return str(info.value)


def test_minimal_site_gets_defaults():
    s = validate_site(site())
    assert s["hub"]["bind_url"] == "http://127.0.0.1:8000"
    assert s["hub"]["network"] == "gpulab"
    assert s["auth"]["type"] == "native"
    assert s["default_profile"] == "base"
    assert s["profiles"][0]["max_gpus"] == 0
    assert s["profiles"][0]["shm_size"] == 1024**3
    assert s["storage"]["home"] == "{prefix}-home-{username}"
    assert s["users"]["sudo"] is False


def test_example_file_is_valid(tmp_path):
    s = load_site("gpulab.example.yaml")
    assert [p["name"] for p in s["profiles"]] == ["base", "pytorch"]
    assert s["storage"]["datasets"][0]["mode"] == "ro"


def test_dataset_mode_error_names_key_path():
    raw = site(
        storage={
            "datasets": [
                {"name": "a", "source": "/data/a", "target": "/datasets/a"},
                {"name": "b", "source": "/data/b", "target": "/datasets/b", "mode": "rx"},
            ]
        }
    )
    assert error_of(raw) == 'storage.datasets[1].mode: must be "ro" or "rw", got "rx"'


@pytest.mark.parametrize(
    "raw, expected",
    [
        (site(hub={"bind_ur": "http://x"}), "hub.bind_ur: unknown key"),
        (
            site(profiles=[{"name": "base", "image": "x", "gpus": "two"}]),
            "profiles[0].gpus: must be a whole number",
        ),
        (
            site(profiles=[{"name": "base", "image": "x", "gpus": 2, "max_gpus": 1}]),
            "profiles[0].gpus: default 2 is above max_gpus 1",
        ),
        (site(profiles=[{"name": "Base!", "image": "x"}]), "profiles[0].name: must be lowercase"),
        (
            site(profiles=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
            "profiles[1].name: duplicate",
        ),
        (site(profiles=[]), "profiles: must have at least 1 entry"),
        (
            site(profiles=[{"name": "a", "image": "x", "mem_limit": "lots"}]),
            "profiles[0].mem_limit: must be a size",
        ),
        (site(default_profile="gpu"), 'default_profile: "gpu" is not one of the profiles'),
        (site(auth={}), "auth.admin_users: is required"),
        (site(auth={"admin_users": ["a"], "type": "github"}), "auth.github: is required"),
        (
            site(auth={"admin_users": ["a"], "type": "ldap"}),
            'auth.type: must be "native" or "github"',
        ),
        (site(hub={"subnet": "8.8.8.0/24"}), "hub.subnet: must be a private IPv4 subnet"),
        (site(hub={"db_url": "mysql://x"}), "hub.db_url: must be a URL starting with sqlite://"),
        (site(storage={"home": "/data/{user}"}), "storage.home: unknown placeholder {user}"),
        (
            site(storage={"datasets": [{"name": "e", "source": "/x", "target": "/etc/x"}]}),
            "storage.datasets[0].target",
        ),
        (
            site(storage={"datasets": [{"name": "e", "source": "/x"}]}),
            "storage.datasets[0].target: is required",
        ),
        (site(users={"sudo": "yes"}), "users.sudo: must be true or false"),
        (site(surprise=1), "surprise: unknown key"),
        (
            site(gpus={"devices": "some"}),
            'gpus.devices: must be "auto" (ask NVML) or a list of GPUs',
        ),
        (
            site(gpus={"devices": [{"index": 0, "uuid": "GPU-a"}]}),
            "gpus.devices[0].memory: is required",
        ),
        (
            site(
                gpus={
                    "devices": [
                        {"index": 0, "uuid": "GPU-a", "memory": "1G"},
                        {"index": 1, "uuid": "GPU-a", "memory": "1G"},
                    ]
                }
            ),
            "gpus.devices[1].uuid: 'GPU-a' is also gpus.devices[0].uuid",
        ),
        (site(gpus={"mode": "fair"}), 'gpus.mode: must be "exclusive" or "shared"'),
        (
            site(gpus={"quota": {"users": {"alice": -1}}}),
            "gpus.quota.users.alice: must be at least 0",
        ),
        (
            site(gpus={"shared_overrides": {"first": 2}}),
            "gpus.shared_overrides.first: key must be a GPU UUID or index",
        ),
    ],
)
def test_bad_values_name_their_key(raw, expected):
    assert expected in error_of(raw)


def test_postgres_url_accepted():
    s = validate_site(site(hub={"db_url": "postgresql://hub@db/hub"}))
    assert s["hub"]["db_url"].startswith("postgresql://")


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "gpulab.yaml"
    path.write_text("auth:\n  admin_users: [a\nprofiles: []\n")
    with pytest.raises(ConfigError) as info:
        load_site(str(path))
    assert "not valid YAML at line" in str(info.value)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_site(str(tmp_path / "nope.yaml"))


def test_round_trip_through_yaml(tmp_path):
    path = tmp_path / "gpulab.yaml"
    path.write_text(
        yaml.safe_dump(
            site(storage={"datasets": [{"name": "d", "source": "vol1", "target": "/datasets/d/"}]})
        )
    )
    s = load_site(str(path))
    assert s["storage"]["datasets"][0]["target"] == "/datasets/d"


@pytest.mark.parametrize(
    "text, nbytes",
    [
        ("512M", 512 * 1024**2),
        ("16G", 16 * 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("2GiB", 2 * 1024**3),
        (4096, 4096),
    ],
)
def test_parse_size(text, nbytes):
    assert parse_size(text) == nbytes


def test_hooks_defaults_and_switches():
    s = validate_site(site())
    assert s["hooks"] == {
        "tf_memory_growth": True,
        "jax_preallocate": False,
        "tensorboard_logdir": "~/runs",
    }
    s = validate_site(
        site(
            hooks={
                "tf_memory_growth": False,
                "jax_preallocate": True,
                "tensorboard_logdir": "/scratch/tb",
            }
        )
    )
    assert s["hooks"] == {
        "tf_memory_growth": False,
        "jax_preallocate": True,
        "tensorboard_logdir": "/scratch/tb",
    }


@pytest.mark.parametrize(
    "hooks, expected",
    [
        ({"tf_memory_growth": "yes"}, "hooks.tf_memory_growth: must be true or false"),
        ({"jax_preallocate": 1}, "hooks.jax_preallocate: must be true or false"),
        (
            {"tensorboard_logdir": "runs"},
            "hooks.tensorboard_logdir: must be a path in the container",
        ),
        (
            {"tensorboard_logdir": "/a\nb"},
            "hooks.tensorboard_logdir: must be a path in the container",
        ),
        ({"tf_growth": True}, "hooks.tf_growth: unknown key"),
    ],
)
def test_hooks_errors_name_their_key(hooks, expected):
    assert expected in error_of(site(hooks=hooks))


def test_ssh_defaults_keys_only_on_localhost():
    ssh = validate_site(site())["ssh"]
    assert ssh == {
        "enabled": True,
        "password_login": False,
        "host_address": "127.0.0.1",
        "port_base": 22000,
        "public_host": None,
        "activity_interval": 60,
        "tcp_forwarding": True,
        "x11_forwarding": True,
    }


@pytest.mark.parametrize(
    "ssh,expected",
    [
        (
            {"port_base": 80},
            "ssh.port_base: must be 0 (no direct SSH ports) or at least 1024, got 80",
        ),
        ({"port_base": 70000}, "ssh.port_base"),
        (
            {"host_address": "localhost"},
            'ssh.host_address: must be an IP address such as "127.0.0.1" or "0.0.0.0", got "localhost"',
        ),
        ({"password_login": "yes"}, "ssh.password_login"),
        ({"pasword_login": True}, "ssh.pasword_login: unknown key"),
        ({"activity_interval": 0}, "ssh.activity_interval"),
        ({"public_host": "bad host"}, "ssh.public_host"),
    ],
)
def test_bad_ssh_values_name_their_key(ssh, expected):
    assert expected in error_of(site(ssh=ssh))


def test_missing_dataset_host_path_stops_startup_before_docker(tmp_path):
    from traitlets.config import Config

    from gpulab.hub.wiring import configure, missing_host_paths

    present = tmp_path / "present"
    present.mkdir()
    s = validate_site(
        site(
            hub={"state_dir": str(tmp_path / "state")},
            storage={
                "datasets": [
                    {"name": "a", "source": str(present), "target": "/datasets/a"},
                    {"name": "v", "source": "a-volume", "target": "/datasets/v"},
                    {"name": "b", "source": str(tmp_path / "absent"), "target": "/datasets/b"},
                ]
            },
        )
    )
    assert missing_host_paths(s) == [("storage.datasets[2].source", str(tmp_path / "absent"))]
    with pytest.raises(
        ConfigError, match=r"^storage\.datasets\[2\]\.source: host path .*absent does not exist"
    ):
        configure(Config(), site=s, environ={})
    assert not (tmp_path / "state").exists(), "nothing was created"


def test_sudo_needs_per_user_subdomains():
    with pytest.raises(ConfigError, match=r"^users\.sudo: needs hub\.subdomain_host"):
        validate_site(site(users={"sudo": True}))
    ok = validate_site(
        site(users={"sudo": True}, hub={"subdomain_host": "https://hub.lab.example"})
    )
    assert ok["users"]["sudo"] and ok["hub"]["subdomain_host"] == "https://hub.lab.example"


def test_oauth_admins_must_be_allowed_by_name():
    oauth = {
        "client_id": "x",
        "client_secret_env": "S",
        "callback_url": "https://hub/hub/oauth_callback",
        "allowed_groups": ["lab"],
    }
    with pytest.raises(
        ConfigError,
        match=r'^auth\.admin_users\[0\]: "admin" must also be in auth\.github\.allowed_users',
    ):
        validate_site(site(auth={"type": "github", "admin_users": ["admin"], "github": oauth}))
    ok = validate_site(
        site(
            auth={
                "type": "github",
                "admin_users": ["ada"],
                "github": {**oauth, "allowed_users": ["ada"]},
            }
        )
    )
    assert ok["auth"]["admin_users"] == ["ada"]


def test_containers_limits_and_scratch_target():
    s = validate_site(site(containers={"pids_limit": 512, "log_max_size": "5M"}))
    assert s["containers"] == {"pids_limit": 512, "log_max_size": 5 * 1024**2, "log_max_files": 3}
    with pytest.raises(ConfigError, match=r"^containers\.pids_limit: must be at least 64"):
        validate_site(site(containers={"pids_limit": 1}))
    with pytest.raises(
        ConfigError,
        match=r"^storage\.scratch_target: \"/usr/local\" would hide part of the container system",
    ):
        validate_site(
            site(storage={"scratch": "/scratch/{username}", "scratch_target": "/usr/local"})
        )
