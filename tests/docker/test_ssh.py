"""SSH into the user's own container, both ways in, with the real OpenSSH client."""

import hashlib
import html
import http.server
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
import requests

from harness.hub import free_port, free_port_base
from harness.jupyter_ws import terminal_run, ws_status
from harness.ssh import SSH, Browser, host_key_fingerprints, keygen, messages

ENV_NAMES = re.compile(
    r"^(PATH|LD_LIBRARY_PATH|NVIDIA_[A-Z_]+|CUDA_[A-Z_]+|TF_[A-Z_]+|XLA_[A-Z_]+|PIP_USER)=(.*)$",
    re.M,
)


@pytest.fixture(scope="module")
def lab(make_hub, tmp_path_factory):
    """A hub with SSH on; alice (key added on the page) and bob (key added through the API), both running."""
    hub = make_hub({"ssh": {"port_base": free_port_base(), "activity_interval": 2}})
    work = tmp_path_factory.mktemp("ssh")
    lab = {"hub": hub, "work": work, "port_base": hub.site["ssh"]["port_base"]}
    for name in ("alice", "bob"):
        hub.create_user(name)
        token_file = work / f"{name}.token"
        token_file.write_text(hub.user_token(name))
        key = work / f"{name}_key"
        port = int(
            re.search(r"^ +Port (\d+)$", Browser(hub, name).page(), re.M).group(1)
        )  # from the page's ~/.ssh/config
        lab[name] = {
            "id": port - lab["port_base"],
            "key": key,
            "pub": keygen(key),
            "token_file": token_file,
            "port": port,
        }
    page = Browser(hub, "alice")
    r = page.post(action="add_key", key=lab["alice"]["pub"])
    assert r.status_code == 200 and messages(r.text, "ok"), r.text
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": lab["bob"]["pub"]},
        headers=token("bob", lab),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    hub.spawn("alice")
    hub.spawn("bob")
    for name in ("alice", "bob"):  # published where the page says
        ports = hub.containers(name)[0].attrs["HostConfig"]["PortBindings"]["22/tcp"]
        assert ports == [{"HostIp": "127.0.0.1", "HostPort": str(lab[name]["port"])}], ports
    return lab


def token(name, lab):
    return {"Authorization": f"token {lab[name]['token_file'].read_text()}"}


def ssh_for(lab, name):
    return SSH(str(lab["work"]), lab[name]["key"])


def test_page_is_in_the_nav_and_rejects_bad_input(lab, tmp_path):
    hub = lab["hub"]
    hub.create_user("carol")
    page = Browser(hub, "carol")
    html = page.page()
    assert re.search(r'href="/hub/ssh"[^>]*>SSH<', html), "no SSH link in the hub navigation"
    dsa_like = "ssh-dss AAAAB3NzaC1kc3MAAACBAP" + "A" * 60
    good = keygen(tmp_path / "k")
    rsa_small = keygen(tmp_path / "small", "rsa", 1024)
    bad = {
        "garbage": ("not a key at all", "unsupported key type"),
        "bad base64": ("ssh-ed25519 AAAA$$$$", "not valid base64"),
        "type mismatch": ("ssh-rsa " + good.split()[1], "not 'ssh-rsa'"),
        "truncated": (good.split()[0] + " " + good.split()[1][:-12], "truncated"),
        "dsa": (dsa_like, "unsupported key type"),
        "short rsa": (rsa_small, "at least 2048"),
        "options": ('command="rm -rf ~" ' + good, "options before the key are not allowed"),
        "private key": ("-----BEGIN OPENSSH PRIVATE KEY-----", "PRIVATE key: it was not stored"),
        "two keys": (good + "\n" + good, "exactly one key"),
        "oversized key": ("ssh-ed25519 " + "A" * 9000, "longer than 8192"),
    }
    for what, (key, reason) in bad.items():
        r = page.post(action="add_key", key=key)
        errors = messages(r.text, "error")
        assert r.status_code == 400 and errors and reason in errors[0], (
            what,
            r.status_code,
            errors,
        )
    r = page.post(action="add_key", key="ssh-ed25519 " + "A" * 40000)
    assert r.status_code == 400 and "larger than 32 KiB" in messages(r.text, "error")[0]
    for pw, reason in (("short", "at least 10"), ("x" * 80, "longer than 72")):
        r = page.post(action="set_password", password=pw)
        assert r.status_code == 400 and reason in messages(r.text, "error")[0]
    carol_token = {"Authorization": f"token {hub.user_token('carol')}"}
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": "ssh-ed25519 AAAA"},
        headers=carol_token,
        timeout=30,
    )
    assert r.status_code == 400 and "key not added" in r.text
    assert (
        requests.get(hub.url + "/hub/api/gpulab/ssh/keys", headers=carol_token, timeout=30).json()
        == []
    )
    assert "No keys yet" in page.page() and "No password is set" in page.page()


def test_both_ways_reach_the_notebooks_container(lab):
    hub = lab["hub"]
    marker = f"written by the notebook at {time.time()}"
    r = requests.put(
        hub.user_url("alice", "api/contents/marker.txt"),
        json={"type": "file", "format": "text", "content": marker},
        headers=token("alice", lab),
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    ssh = ssh_for(lab, "alice")
    direct = ssh.run(SSH.direct(lab["alice"]["port"]), "alice", "cat", "~/marker.txt")
    assert direct.returncode == 0 and direct.stdout == marker, direct.stderr
    via_hub = ssh.run(
        SSH.via_hub(hub.url, "alice", lab["alice"]["token_file"], lab["alice"]["port"]),
        "alice",
        "cat",
        "~/marker.txt",
        strict="yes",
    )
    assert via_hub.returncode == 0 and via_hub.stdout == marker, via_hub.stderr
    who = ssh.run(SSH.direct(lab["alice"]["port"]), "alice", "id", "-u")
    assert who.stdout.strip() == str(20000 + lab["alice"]["id"])


def test_the_client_from_the_hub_with_its_own_token_reaches_ssh_through_the_hub(lab, tmp_path):
    """As the SSH page tells a student: the hub's own client into a fresh environment (no
    repository, nothing else installed), and the narrow token the page makes for it."""
    hub = lab["hub"]
    page = Browser(hub, "alice")
    text = page.page()
    url = re.search(r"pipx install (\S+\.whl)", text).group(1)
    assert url.startswith(hub.site["hub"]["bind_url"].rstrip("/") + "/hub/gpulab/client/"), url
    venv = tmp_path / "laptop"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--no-index", url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    client = venv / "bin" / "gpulab-client"
    # the single file works as well, as it is
    pyz = tmp_path / "gpulab-client.pyz"
    pyz.write_bytes(requests.get(url.rsplit("/", 1)[0] + "/gpulab-client.pyz", timeout=30).content)
    assert (
        subprocess.run([sys.executable, str(pyz), "--version"], capture_output=True).returncode == 0
    )
    # the token the page makes for the client: enough for SSH through the hub, nothing more
    r = page.post(action="client_token")
    token = re.search(r'id="client-token">([0-9a-f]+)<', r.text).group(1)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    ssh = ssh_for(lab, "alice")
    via_hub = ssh.run(
        SSH.via_hub(hub.url, "alice", token_file, lab["alice"]["port"], client=client),
        "alice",
        "id",
        "-un",
    )
    assert via_hub.returncode == 0 and via_hub.stdout.strip() == "alice", via_hub.stderr
    assert "is not the hub's" not in via_hub.stderr  # the same version: no advice
    narrow = {"Authorization": f"token {token}"}
    assert requests.get(f"{hub.url}/hub/api/users", headers=narrow, timeout=30).status_code == 403
    r = requests.post(f"{hub.url}/hub/api/users/alice/tokens", headers=narrow, json={}, timeout=30)
    assert r.status_code == 403, "the client's token cannot make tokens"


def test_users_roots_passwords_and_strangers_are_kept_out(lab):
    hub, alice, bob = lab["hub"], lab["alice"], lab["bob"]
    as_bob = ssh_for(lab, "bob")
    assert (
        as_bob.run(SSH.direct(bob["port"]), "bob", "true").returncode == 0
    )  # bob's key works for bob
    for login in ("alice", "bob"):
        r = as_bob.run(SSH.direct(alice["port"]), login, "true")
        assert r.returncode == 255 and "Permission denied" in r.stderr, r.stderr
    r = as_bob.run(
        SSH.via_hub(hub.url, "bob", bob["token_file"], bob["port"]), "alice", "true", strict="no"
    )
    assert r.returncode == 255 and "Permission denied" in r.stderr
    as_alice = ssh_for(lab, "alice")
    r = as_alice.run(SSH.direct(alice["port"]), "root", "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    r = as_alice.run(SSH.direct(alice["port"]), "alice", "true", password="any password at all")
    assert r.returncode == 255 and "Permission denied (publickey)" in r.stderr, r.stderr
    route = hub.user_url("alice", "sshd/")
    assert ws_status(route) in (302, 401, 403)
    assert ws_status(route, bob["token_file"].read_text()) == 403
    assert ws_status(route, alice["token_file"].read_text()) == 101
    # bob's token can neither read alice's keys nor pass for her container
    r = requests.get(
        hub.url + "/hub/api/gpulab/ssh/authorized_keys", headers=token("bob", lab), timeout=30
    )
    assert alice["pub"].split()[1] not in r.text


def test_keys_reach_a_running_container_at_once(lab, tmp_path):
    hub, alice = lab["hub"], lab["alice"]
    new_pub = keygen(tmp_path / "laptop")
    ssh = SSH(str(lab["work"]), tmp_path / "laptop")
    assert ssh.run(SSH.direct(alice["port"]), "alice", "true").returncode == 255
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": new_pub},
        headers=token("alice", lab),
        timeout=30,
    )
    assert r.status_code == 201
    assert ssh.run(SSH.direct(alice["port"]), "alice", "true").returncode == 0
    r = requests.delete(
        hub.url + "/hub/api/gpulab/ssh/keys",
        params={"fingerprint": r.json()["fingerprint"]},
        headers=token("alice", lab),
        timeout=30,
    )
    assert r.status_code == 204
    assert ssh.run(SSH.direct(alice["port"]), "alice", "true").returncode == 255


def test_ssh_sees_the_notebook_terminals_environment(lab):
    hub = lab["hub"]
    term = terminal_run(
        hub.user_url("alice"),
        lab["alice"]["token_file"].read_text(),
        "env | sort; echo END-$((6*7))",
        "END-42",
    )
    term_env = dict(ENV_NAMES.findall(term.replace("\r", "")))
    assert "/opt/gpulab/venv/bin" in term_env["PATH"] and "NVIDIA_VISIBLE_DEVICES" in term_env, (
        term_env
    )
    assert {"TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE"} <= set(term_env), term_env
    ssh = ssh_for(lab, "alice")
    for command in (["env"], ["bash", "-lc", "env"]):
        r = ssh.run(SSH.direct(lab["alice"]["port"]), "alice", *command)
        assert r.returncode == 0, r.stderr
        assert dict(ENV_NAMES.findall(r.stdout)) == term_env, command


def test_an_open_ssh_session_is_activity(lab):
    hub = lab["hub"]

    def activity():
        model = hub.api("GET", "/users/alice").json()
        return datetime.fromisoformat(model["last_activity"].rstrip("Z")), datetime.fromisoformat(
            model["servers"][""]["last_activity"].rstrip("Z")
        )

    session = ssh_for(lab, "alice").popen(SSH.direct(lab["alice"]["port"]), "alice", "sleep", "14")
    time.sleep(4)  # logged in (the key lookup itself may count as activity)
    user_before, server_before = activity()
    time.sleep(8)  # nothing but the open SSH session
    user_after, server_after = activity()
    session.wait(30)
    assert user_after > user_before and server_after > server_before, (
        user_before,
        user_after,
        server_before,
        server_after,
    )


def test_host_key_survives_restart_and_ssh_proxy_starts_the_server(lab):
    hub, alice = lab["hub"], lab["alice"]
    before = host_key_fingerprints(alice["port"])
    assert len(before) == 2  # ed25519 and ecdsa
    ssh = ssh_for(lab, "alice")
    # learn the host key (accept-new) and leave a file in the home, as a notebook would
    first = ssh.run(
        SSH.direct(alice["port"]), "alice", "echo 'written by the notebook' > ~/marker.txt"
    )
    assert first.returncode == 0, first.stderr
    hub.stop_server("alice")
    r = ssh.run(
        SSH.via_hub(hub.url, "alice", alice["token_file"], alice["port"]),
        "alice",
        "cat",
        "~/marker.txt",
        strict="yes",
    )
    assert r.returncode == 0 and "written by the notebook" in r.stdout, r.stderr
    assert "starting the server of alice" in r.stderr and "%]" in r.stderr, r.stderr
    assert host_key_fingerprints(alice["port"]) == before


def test_admin_policy_password_login_and_sudo(lab):
    hub, alice = lab["hub"], lab["alice"]
    alice_page, admin_page = Browser(hub, "alice"), Browser(hub, "admin")
    assert alice_page.post(action="admin_settings", password_login="1").status_code == 403
    password = "correct horse battery"
    assert alice_page.post(action="set_password", password=password).status_code == 200
    assert "Admin: SSH policy" in admin_page.page() and "Admin: SSH policy" not in alice_page.page()
    # sudo needs per-user subdomains (test_security.py runs a hub with them): refused here, nothing saved
    refused = admin_page.post(action="admin_settings", password_login="1", sudo="1")
    assert refused.status_code == 400 and "sudo needs per-user subdomains" in html.unescape(
        refused.text
    )
    ssh = ssh_for(lab, "alice")
    try:
        assert admin_page.post(action="admin_settings", password_login="1").status_code == 200
        hub.stop_server("alice")
        hub.spawn("alice")
        shadow = hub.containers("alice")[0].exec_run(["getent", "shadow", "alice"]).output.decode()
        # checked against the hub at each login (PAM), never kept in the container's /etc/shadow
        assert "$2b$" not in shadow and password not in shadow
        assert (
            ssh.run(
                SSH.direct(alice["port"]), "alice", "true", password="wrong password!"
            ).returncode
            == 255
        )
        r = ssh.run(SSH.direct(alice["port"]), "alice", "id", "-un", password=password)
        assert r.returncode == 0 and r.stdout.strip() == "alice", r.stderr
        r = ssh.run(SSH.direct(alice["port"]), "alice", "sudo", "-n", "true", password=password)
        assert r.returncode != 0, "no sudo without subdomains"
    finally:
        assert admin_page.post(action="admin_settings").status_code == 200
    hub.stop_server("alice")
    hub.spawn("alice")
    assert ssh.run(SSH.direct(alice["port"]), "alice", "true", password=password).returncode == 255


def test_scp_large_file_both_ways(lab, tmp_path):
    hub, alice = lab["hub"], lab["alice"]
    size = 256 * 1024 * 1024
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(size // (16 * 1024 * 1024)):
            f.write(os.urandom(16 * 1024 * 1024))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    ssh = ssh_for(lab, "alice")
    for label, way in (
        ("direct port", SSH.direct(alice["port"])),
        ("through the hub", SSH.via_hub(hub.url, "alice", alice["token_file"], alice["port"])),
    ):
        t0 = time.monotonic()
        r = ssh.scp(way, "alice", src, "big.bin")
        seconds = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        check = ssh.run(SSH.direct(alice["port"]), "alice", "sha256sum", "big.bin")
        assert check.stdout.split()[0] == digest
        print(
            f"\n[gpulab] scp {size // 2**20} MiB {label}: {seconds:.1f}s, {size / 2**20 / seconds:.0f} MiB/s"
        )
    ssh.run(SSH.direct(alice["port"]), "alice", "rm", "-f", "big.bin")


# --- SSH as labs use it: sftp, rsync, port forwarding, X11, VS Code's needs ---


def _ssh_args(ssh, way):
    extra, host = way
    return [*ssh.options(), *extra], host


def test_sftp_and_rsync_both_ways_in(lab, tmp_path):
    hub, alice = lab["hub"], lab["alice"]
    ssh = ssh_for(lab, "alice")
    payload = tmp_path / "data.bin"
    payload.write_bytes(os.urandom(300_000))
    for label, way in (
        ("direct", SSH.direct(alice["port"])),
        ("hub", SSH.via_hub(hub.url, "alice", alice["token_file"], alice["port"])),
    ):
        opts, host = _ssh_args(ssh, way)
        back = tmp_path / f"back-{label}.bin"
        batch = tmp_path / f"batch-{label}"
        batch.write_text(
            f"put {payload} sftp-{label}.bin\nget sftp-{label}.bin {back}\nrm sftp-{label}.bin\n"
        )
        r = subprocess.run(
            ["sftp", "-b", str(batch), *opts, f"alice@{host}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, (label, r.stderr)
        assert back.read_bytes() == payload.read_bytes(), label
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("rsync me\n")
    opts, host = _ssh_args(ssh, SSH.direct(alice["port"]))
    r = subprocess.run(
        ["rsync", "-a", "-e", shlex.join(["ssh", *opts]), f"{src}/", f"alice@{host}:tree/"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (
        ssh.run(SSH.direct(alice["port"]), "alice", "cat", "tree/sub/a.txt").stdout == "rsync me\n"
    )


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def test_port_forwarding_local_and_remote_and_vscode_needs(lab):
    hub, alice = lab["hub"], lab["alice"]
    ssh = ssh_for(lab, "alice")
    (container,) = hub.containers("alice")
    marker = f"served in the container {time.time()}"
    r = container.exec_run(
        ["sh", "-c", f"mkdir -p /tmp/fw && echo '{marker}' > /tmp/fw/index.html"],
        user=container.labels["gpulab.uid"],
    )
    assert r.exit_code == 0
    container.exec_run(
        ["python3", "-m", "http.server", "7000", "--bind", "127.0.0.1", "--directory", "/tmp/fw"],
        user=container.labels["gpulab.uid"],
        detach=True,
    )
    # -L through the hub: a laptop port reaches a port inside the container (TensorBoard, a demo app)
    local = free_port()
    opts, host = _ssh_args(ssh, SSH.via_hub(hub.url, "alice", alice["token_file"], alice["port"]))
    tunnel = subprocess.Popen(
        [
            "ssh",
            *opts,
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"{local}:127.0.0.1:7000",
            f"alice@{host}",
        ],
        stderr=subprocess.PIPE,
    )
    try:

        def fetch():
            try:
                return requests.get(f"http://127.0.0.1:{local}/", timeout=3).text.strip()
            except requests.RequestException:
                return None

        deadline = time.monotonic() + 30
        while fetch() != marker:
            assert tunnel.poll() is None, tunnel.stderr.read().decode()
            assert time.monotonic() < deadline, "the -L forward never answered"
            time.sleep(0.5)
    finally:
        tunnel.terminate()
        tunnel.wait(10)
    # -R on the direct port: a port inside the container reaches one on the laptop
    page = f"served on the laptop {time.time()}".encode()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Page", (_Page,), {"body": page})
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        opts, host = _ssh_args(ssh, SSH.direct(alice["port"]))
        cmd = [
            "ssh",
            *opts,
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            f"7001:127.0.0.1:{server.server_port}",
            f"alice@{host}",
            "--",
        ]
        r = subprocess.run(
            [*cmd, "curl", "-s", "--max-time", "10", "http://127.0.0.1:7001/"],
            capture_output=True,
            timeout=60,
        )
        assert r.returncode == 0 and r.stdout == page, r.stderr
    finally:
        server.shutdown()
    # VS Code Remote-SSH: a login shell, tar, forwarding (above)
    r = ssh.run(SSH.direct(alice["port"]), "alice", "bash", "-lc", "'echo $SHELL; command -v tar'")
    assert r.returncode == 0 and r.stdout.split() == ["/bin/bash", "/usr/bin/tar"], (
        r.stdout,
        r.stderr,
    )


@pytest.fixture(scope="module")
def xvfb(tmp_path_factory):
    display = next(n for n in range(91, 200) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    proc = subprocess.Popen(
        ["Xvfb", f":{display}", "-nolisten", "tcp", "-screen", "0", "800x600x24"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not os.path.exists(f"/tmp/.X11-unix/X{display}"):
        assert proc.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.2)
    yield f":{display}"
    proc.terminate()
    proc.wait(10)


def test_x11_forwarding_reaches_a_local_x_server(lab, xvfb, tmp_path):
    hub, alice = lab["hub"], lab["alice"]
    ssh = ssh_for(lab, "alice")
    env = dict(os.environ, DISPLAY=xvfb, XAUTHORITY=str(tmp_path / "Xauthority"))
    for way in (
        SSH.direct(alice["port"]),
        SSH.via_hub(hub.url, "alice", alice["token_file"], alice["port"]),
    ):
        opts, host = _ssh_args(ssh, way)
        cmd = [
            "ssh",
            "-X",
            *opts,
            f"alice@{host}",
            "--",
            "sh",
            "-c",
            "'echo DISPLAY=$DISPLAY; xdpyinfo | grep -E \"(name of display|vendor string|dimensions):\"'",
        ]
        r = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
        )
        assert r.returncode == 0, r.stderr
        assert re.search(r"DISPLAY=localhost:\d+\.0", r.stdout), r.stdout
        assert "800x600 pixels" in r.stdout, r.stdout  # the X server on this (the user's) machine


def test_forwarding_off_when_the_admin_says_so(make_hub, tmp_path):
    hub = make_hub(
        {"ssh": {"port_base": free_port_base(), "tcp_forwarding": False, "x11_forwarding": False}}
    )
    hub.create_user("dora")
    token = hub.user_token("dora")
    key = tmp_path / "key"
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": keygen(key)},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    hub.spawn("dora")
    port = int(
        hub.containers("dora")[0].attrs["HostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"]
    )
    ssh = SSH(str(tmp_path), key)
    opts, host = _ssh_args(ssh, SSH.direct(port))
    r = subprocess.run(
        [
            "ssh",
            *opts,
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "7002:127.0.0.1:22",
            f"dora@{host}",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0 and "remote port forwarding failed" in r.stderr, r.stderr
    local = free_port()
    tunnel = subprocess.Popen(
        ["ssh", *opts, "-N", "-L", f"{local}:127.0.0.1:22", f"dora@{host}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while (
            True
        ):  # the listener is on this side; the container refuses each connection through it
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=5) as conn:
                    conn.settimeout(5)
                    assert (
                        conn.recv(100) == b""
                    )  # closed at once: no SSH banner from the container's port 22
                    break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.3)
    finally:
        tunnel.terminate()
        try:
            tunnel.wait(10)
        except (
            subprocess.TimeoutExpired
        ):  # an ssh still in its handshake may not act on SIGTERM at once
            tunnel.kill()
            tunnel.wait(10)
    r = subprocess.run(
        ["ssh", "-X", *opts, f"dora@{host}", "--", "echo", "DISPLAY=$DISPLAY"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, DISPLAY=":0"),
    )
    assert r.returncode == 0 and r.stdout.strip() == "DISPLAY=", (r.stdout, r.stderr)
    hub.stop_server("dora")
