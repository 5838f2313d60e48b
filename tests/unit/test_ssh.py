"""SSH pieces that need neither Docker nor a hub: keys, passwords, store, config snippets, ports."""

import base64
import subprocess

import pytest

from gpulab.core.ssh import keys
from gpulab.core.ssh.clientconfig import ssh_config
from gpulab.core.ssh.ports import host_port
from gpulab.hub.sshstore import MAX_KEYS_PER_USER, SSHStore, StoreError


def keygen(tmp_path, kind="ed25519", bits=None, name="k"):
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "me@laptop", "-f", str(tmp_path / name)]
    subprocess.run(args + (["-b", str(bits)] if bits else []), check=True)
    pub = (tmp_path / f"{name}.pub").read_text()
    fp = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / f"{name}.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    return pub, fp


@pytest.mark.parametrize(
    "kind,bits", [("ed25519", None), ("rsa", 3072), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521)]
)
def test_real_keys_parse_with_ssh_keygens_fingerprint(tmp_path, kind, bits):
    pub, fp = keygen(tmp_path, kind, bits)
    key = keys.parse_public_key(pub)
    assert key.fingerprint == fp and key.comment == "me@laptop"
    assert key.bits == (bits or 256) and key.line() == pub.strip()


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", "empty"),
        ("ssh-ed25519", "missing"),
        ("ssh-ed25519 !!!!", "base64"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "unsupported key type"),
        ('from="*" ssh-ed25519 AAAA', "options"),
        ("-----BEGIN RSA PRIVATE KEY-----", "PRIVATE key: it was not stored"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
            "PRIVATE key: it was not stored. Never paste it",
        ),
        (
            "ssh-ed25519 "
            + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x10" + b"x" * 16).decode(),
            "32 bytes",
        ),
        ("ssh-ed25519 " + "A" * 9000, "longer than"),
    ],
)
def test_bad_keys_are_rejected_with_a_reason(text, reason):
    with pytest.raises(keys.InvalidInput, match=reason):
        keys.parse_public_key(text)


def test_small_rsa_and_bad_comment_are_rejected(tmp_path):
    pub, _ = keygen(tmp_path, "rsa", 1024)
    with pytest.raises(keys.InvalidInput, match="at least 2048"):
        keys.parse_public_key(pub)
    pub, _ = keygen(tmp_path, name="c")
    with pytest.raises(keys.InvalidInput, match="comment"):
        keys.parse_public_key(pub.split()[0] + " " + pub.split()[1] + " bad\x07comment")


def test_password_hash_is_salted_bcrypt():
    a, b = (
        keys.hash_password("correct horse battery", rounds=4),
        keys.hash_password("correct horse battery", rounds=4),
    )
    assert a.startswith("$2b$04$") and a != b
    assert keys.verify_password("correct horse battery", a) and not keys.verify_password(
        "wrong horse battery", a
    )
    for bad in ("short", "x" * 73, "ten chars\n!"):
        with pytest.raises(keys.InvalidInput):
            keys.hash_password(bad)


def test_store_keeps_keys_per_user(tmp_path):
    store = SSHStore(str(tmp_path / "ssh.sqlite"))
    pub, fp = keygen(tmp_path)
    key = keys.parse_public_key(pub)
    store.add_key("alice", key)
    with pytest.raises(StoreError, match="already"):
        store.add_key("alice", key)
    assert store.keys("alice") == [key] and store.keys("bob") == []
    assert (
        not store.remove_key("bob", fp)
        and store.remove_key("alice", fp)
        and store.keys("alice") == []
    )
    with pytest.raises(StoreError, match="bcrypt"):
        store.set_password_hash("alice", "plain text")
    assert store.setting("password_login", False) is False
    store.set_setting("password_login", True)
    assert SSHStore(store.path).setting("password_login", False) is True


def test_store_limits_keys_per_user(tmp_path):
    store = SSHStore(str(tmp_path / "ssh.sqlite"))
    for i in range(MAX_KEYS_PER_USER):
        store.add_key("alice", keys.parse_public_key(keygen(tmp_path, name=f"k{i}")[0]))
    with pytest.raises(StoreError, match="at most"):
        store.add_key("alice", keys.parse_public_key(keygen(tmp_path, name="extra")[0]))


def test_ports_are_stable_and_distinct():
    assert host_port(22000, 7) == 22007 and host_port(22000, 8) == 22008
    with pytest.raises(ValueError, match="port_base"):
        host_port(65000, 600)


def test_config_snippet_has_both_ways_with_one_host_key_alias():
    text, alias = ssh_config(
        username="a b%c",
        login="a_b_c",
        hub_url="https://hub.lab.example",
        direct_host="hub.lab.example",
        direct_port=22007,
    )
    assert (
        f"Host {alias}\n" in text
        and f"Host {alias}-hub\n" in text
        and text.count(f"HostKeyAlias {alias}\n") == 2
    )
    assert "Port 22007" in text and "--user 'a b%%c'" in text
    text, _ = ssh_config(
        username="a", login="a", hub_url="http://127.0.0.1:8000", direct_host="x", direct_port=None
    )
    assert (
        "Port" not in text
        and "ProxyCommand gpulab-client ssh-proxy --hub http://127.0.0.1:8000" in text
    )


def test_hub_setup_adds_to_other_handlers_and_templates(tmp_path):
    from traitlets.config import Config

    from gpulab.core.site.model import validate_site
    from gpulab.hub.pages.base import TEMPLATES
    from gpulab.hub.wiring import configure_ssh

    c = Config()
    c.JupyterHub.extra_handlers = [(r"/other", object)]
    c.JupyterHub.template_paths = ["/native"]
    site = validate_site(
        {
            "auth": {"admin_users": ["a"]},
            "profiles": [{"name": "b", "image": "x"}],
            "ssh": {"host_address": "0.0.0.0"},
        }
    )
    configure_ssh(c, site, str(tmp_path))
    routes = [h[0] for h in c.JupyterHub.extra_handlers]
    assert (
        routes[0] == "/other" and "/ssh" in routes and "/api/gpulab/ssh/authorized_keys" in routes
    )
    assert (
        c.JupyterHub.template_paths == [TEMPLATES, "/native"]
        and c.JupyterHub.template_vars["gpulab_ssh"]
    )
    assert c.GPUDockerSpawner.ssh_enabled and c.GPUDockerSpawner.ssh_store_path == str(
        tmp_path / "gpulab-ssh.sqlite"
    )
    assert c.GPUDockerSpawner.ssh_host_address == "0.0.0.0"
