"""A hostile lab member, for real: each attack against a real hub and real containers.

Every test here failed on gpulab before it closed the hole (see the security table in the
docs/admin.md, "Security"); each must keep failing for the attacker.
"""

import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest
import requests
from selenium.webdriver.support.ui import WebDriverWait

from harness.browser import artifacts_on_failure, chromium
from harness.hub import free_port, free_port_base
from harness.ssh import SSH, Browser, keygen

from .conftest import ARTIFACTS

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


def run_as(container, command, user):
    r = container.exec_run(["bash", "-c", command], user=user, demux=True)
    out, err = r.output
    return r.exit_code, (out or b"").decode(), (err or b"").decode()


def uid_of(container):
    return container.labels["gpulab.uid"]


def ip_of(hub, container):
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][hub.name]["IPAddress"]


CONNECT = "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(3); s.connect((sys.argv[1], int(sys.argv[2]))); print(\"connected\")' {} {}"


@pytest.fixture(scope="module")
def flat(make_hub):
    """No subdomains, no sudo (the default), SSH on, small pids limit; alice and bob running."""
    hub = make_hub({"ssh": {"port_base": free_port_base()}, "containers": {"pids_limit": 256}})
    for name in ("alice", "bob"):
        hub.create_user(name)
        hub.spawn(name)
    return hub


@pytest.fixture(scope="module")
def subdomains(make_hub):
    """Per-user subdomains (<name>.localhost) and sudo on: the only way the site file allows sudo."""
    hub = make_hub({"users": {"sudo": True}, "ssh": {"port_base": 0}}, subdomains=True)
    for name in ("alice", "mallory"):
        hub.create_user(name)
    return hub


# --- tokens -------------------------------------------------------------------------------


def test_narrow_and_server_tokens_cannot_add_ssh_keys(flat, tmp_path):
    key = keygen(tmp_path / "k")
    url = flat.url + "/hub/api/gpulab/ssh/keys"
    narrow = flat.api(
        "POST",
        "/users/alice/tokens",
        json={"scopes": ["access:servers!user=alice"], "note": "narrow"},
    ).json()["token"]
    (c,) = flat.containers("alice")
    server_token = next(
        e.split("=", 1)[1]
        for e in c.attrs["Config"]["Env"]
        if e.startswith("JUPYTERHUB_API_TOKEN=")
    )
    for label, token in (("narrow", narrow), ("server", server_token)):
        r = requests.post(
            url, json={"key": key}, headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert r.status_code == 403, (label, r.status_code, r.text)
        assert "custom:gpulab:ssh-keys" in r.json()["message"]
    # the server token may still read its owner's keys for sshd, and only those
    r = requests.get(
        flat.url + "/hub/api/gpulab/ssh/authorized_keys",
        headers={"Authorization": f"token {server_token}"},
        timeout=30,
    )
    assert r.status_code == 200
    full = flat.user_token("alice")
    r = requests.post(
        url, json={"key": key}, headers={"Authorization": f"token {full}"}, timeout=30
    )
    assert r.status_code == 201, r.text
    fingerprint = r.json()["fingerprint"]
    r = requests.delete(
        url,
        params={"fingerprint": fingerprint},
        headers={"Authorization": f"token {full}"},
        timeout=30,
    )
    assert r.status_code == 204


# --- the network ----------------------------------------------------------------------------


def test_containers_cannot_reach_each_other(flat):
    (a,), (b,) = flat.containers("alice"), flat.containers("bob")
    ip_b = ip_of(flat, b)
    for port in (8888, 22):
        code, out, err = run_as(a, CONNECT.format(ip_b, port), uid_of(a))
        assert code != 0 and "connected" not in out, (port, out, err)
        with socket.create_connection((ip_b, port), timeout=5):
            pass  # the host (hub, proxy) still reaches it
    api = flat.site["hub"]["api_port"]
    gateway = ip_of(flat, a).rsplit(".", 1)[0] + ".1"
    code, out, err = run_as(a, CONNECT.format(gateway, api), uid_of(a))
    assert code == 0 and "connected" in out, err


@contextlib.contextmanager
def listener(address):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((address, 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        srv.close()


@contextlib.contextmanager
def lan_host():
    """A 'machine on the LAN': a network namespace this test makes, behind a veth pair."""
    ns = f"gpulabt-lan-{os.getpid() % 10000}"
    n = random.randrange(1, 250)
    host_if, peer_if = f"glh{n}", f"glp{n}"
    host_ip, peer_ip = f"10.213.{n}.1", f"10.213.{n}.2"

    def sh(*args):
        subprocess.run(args, check=True, capture_output=True)

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        sh("ip", "link", "set", peer_if, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{peer_ip}/30", "dev", peer_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", peer_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip)
        port = free_port()
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                peer_ip,
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((peer_ip, port), timeout=1),
                ):
                    break
                time.sleep(0.2)
            yield peer_ip, port
        finally:
            server.kill()
            server.wait()
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_containers_cannot_reach_host_services_or_the_lan(flat):
    (a,) = flat.containers("alice")
    gateway = ip_of(flat, a).rsplit(".", 1)[0] + ".1"
    with listener(gateway) as port:
        with socket.create_connection((gateway, port), timeout=5):
            pass
        code, out, _ = run_as(a, CONNECT.format(gateway, port), uid_of(a))
        assert code != 0 and "connected" not in out, "a host service other than the hub API"
    with lan_host() as (ip, port):
        with socket.create_connection((ip, port), timeout=5):
            pass  # the host reaches it: the LAN is there
        code, out, _ = run_as(a, CONNECT.format(ip, port), uid_of(a))
        assert code != 0 and "connected" not in out, "a machine on the LAN"
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"-d 169\.254\.0\.0/16 -j REJECT", rules), "cloud metadata is refused too"


# --- the single-user server -----------------------------------------------------------------

PLANTED_CONFIG = 'c.ServerApp.tornado_settings = {"headers": {"X-Planted": "yes"}}\n'
PLANTED_SITE = "import pathlib; pathlib.Path('/tmp/planted-sitecustomize-ran').write_text('yes')\n"


def test_the_server_ignores_what_the_user_plants(flat):
    """~/.jupyter config and ~/.local site packages change kernels, never the server that serves pages."""
    (c,) = flat.containers("bob")
    uid = uid_of(c)
    code, out, err = run_as(
        c,
        f"set -e; mkdir -p ~/.jupyter; cat > ~/.jupyter/jupyter_server_config.py <<'EOF'\n{PLANTED_CONFIG}EOF\n"
        "site=$(python3 -c 'import site; print(site.getusersitepackages())'); mkdir -p \"$site\"; "
        f"cat > \"$site/usercustomize.py\" <<'EOF'\n{PLANTED_SITE}EOF\n",
        uid,
    )
    assert code == 0, err
    flat.stop_server("bob")
    flat.spawn("bob")
    (c,) = flat.containers("bob")
    r = requests.get(
        flat.user_url("bob", "api/status"),
        headers={"Authorization": f"token {flat.token}"},
        timeout=30,
    )
    assert r.status_code == 200 and "X-Planted" not in r.headers, dict(r.headers)
    assert run_as(c, "test -e /tmp/planted-sitecustomize-ran", "0")[0] != 0, (
        "the user's site packages ran in the server"
    )
    # ...while the user's own Python (kernels, terminals) still sees ~/.local
    code, out, _ = run_as(
        c, "python3 -c 'import usercustomize' && cat /tmp/planted-sitecustomize-ran", uid
    )
    assert code == 0 and out == "yes"
    run_as(
        c,
        "rm -rf ~/.jupyter /tmp/planted-sitecustomize-ran; rm -f $(python3 -c 'import site; print(site.getusersitepackages())')/usercustomize.py",
        uid,
    )


def test_a_link_cannot_start_a_server(flat):
    flat.create_user("carl")
    page = Browser(flat, "carl")
    r = page.s.get(
        flat.url + "/hub/spawn/carl?profile=base&gpus=1", timeout=30, allow_redirects=False
    )
    assert r.status_code == 400 and "spawn form" in r.text, r.text[:500]
    assert not flat.api("GET", "/users/carl").json()["servers"], "no server was started"


def test_a_profile_whose_image_is_missing_is_a_clear_400(make_hub):
    hub = make_hub(
        {
            "profiles": [
                {"name": "base", "image": "localhost/gpulab/base:latest", "mem_limit": "1G"},
                {
                    "name": "ghost",
                    "image": "localhost/gpulab/never-built:latest",
                    "description": "not built",
                },
            ]
        }
    )
    hub.create_user("gil")
    r = hub.api("POST", "/users/gil/server", json={"profile": "ghost"})
    assert r.status_code == 400, r.text
    assert (
        "Profile 'ghost' is unavailable: its image localhost/gpulab/never-built:latest has not been built"
        in r.json()["message"]
    )
    assert hub.containers("gil") == [] and not hub.api("GET", "/users/gil").json()["servers"]
    form = Browser(hub, "gil").s.get(hub.url + "/hub/spawn", timeout=30).text
    ghost = re.search(r'<label class="gpulab-profile[^"]*disabled".*?</label>', form, re.S)
    assert (
        ghost and 'value="ghost"' in ghost.group(0) and "Unavailable: its image" in ghost.group(0)
    )


# --- inside the container -------------------------------------------------------------------


def test_keys_in_authorized_keys_are_ignored(flat, tmp_path):
    (c,) = flat.containers("alice")
    key = tmp_path / "planted"
    pub = keygen(key)
    code, _, err = run_as(
        c,
        f"mkdir -p ~/.ssh && echo '{pub}' >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys",
        uid_of(c),
    )
    assert code == 0, err
    binding = c.attrs["HostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"]
    r = SSH(str(tmp_path), key).run(SSH.direct(int(binding)), "alice", "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr, (r.returncode, r.stderr)


def test_limits_a_fork_bomb_and_the_logs(flat):
    (c,) = flat.containers("alice")
    bomb = (
        "import os, time\n"
        "pids = []\n"
        "for _ in range(1000):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(30); os._exit(0)\n"
        "    pids.append(pid)\n"
        "print(len(pids), flush=True)\n"
        "for pid in pids: os.kill(pid, 9)\n"
    )
    code, out, err = run_as(c, f"python3 -c '{bomb}'", uid_of(c))
    assert code == 0, err
    assert int(out.split()[0]) < 256, f"{out} processes: not bounded by the pids limit"
    host = c.attrs["HostConfig"]
    assert host["PidsLimit"] == 256
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": str(20 * 1024**2), "max-file": "3"},
    }


def test_no_raw_sockets_no_device_nodes_no_setuid_without_sudo(flat):
    (c,) = flat.containers("alice")
    for command in (
        "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'",
        "mknod /tmp/dev-null c 1 3",
    ):
        code, _, err = run_as(c, command, "0")  # even as the container's root
        assert code != 0 and ("not permitted" in err or "Permission" in err), (command, err)
    host = c.attrs["HostConfig"]
    assert (
        host["CapDrop"] == ["ALL"]
        and "NET_RAW" not in host["CapAdd"]
        and "MKNOD" not in host["CapAdd"]
    )
    assert host["SecurityOpt"] == ["no-new-privileges:true"]


def test_with_sudo_root_stays_in_a_box_and_setuid_leftovers_die_with_sudo(subdomains):
    hub = subdomains
    hub.spawn("alice")
    (c,) = hub.containers("alice")
    uid = uid_of(c)
    code, out, err = run_as(c, "sudo -n id -u", uid)
    assert code == 0 and out.strip() == "0", err
    for command in (
        "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'",
        "mknod /tmp/dev-null c 1 3",
    ):
        code, _, err = run_as(c, f"sudo -n {command}", uid)
        assert code != 0, (command, "worked as root with sudo")
    # a setuid-root shell planted while sudo is on...
    code, _, err = run_as(
        c, "sudo -n install -m 4755 /bin/bash ~/rootbash && ls -l ~/rootbash", uid
    )
    assert code == 0, err
    admin = Browser(hub, "admin")
    try:
        assert admin.post(action="admin_settings", sudo="0").status_code == 200
        hub.stop_server("alice")
        hub.spawn("alice")
        (c,) = hub.containers("alice")
        code, out, err = run_as(c, "~/rootbash -p -c 'id -u'", uid)
        assert out.strip() == uid, "...gives no root once sudo is off (no-new-privileges)"
        assert run_as(c, "sudo -n true", uid)[0] != 0
    finally:
        admin.post(action="admin_settings", sudo="1")
        run_as(c, "rm -f ~/rootbash", "0")
        hub.stop_server("alice")


EVIL_PAGE = """<!doctype html><title>waiting</title><script>
(async () => {
  let result = "nothing";
  try {
    const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
    const r = await fetch(HUB + "/hub/api/gpulab/ssh/keys", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf}, body: JSON.stringify({key: KEY})});
    result = "status " + r.status;
  } catch (e) { result = "blocked: " + e; }
  document.title = "done " + result;
})();
</script>"""

# Appended (as root, with sudo) to a module the running server imports only on demand: once
# imported, it serves mallory's page at <her server>/evil, to anyone, without asking who they are.
INJECT = """
def _gpulab_test_changed_server():
    from jupyter_server.serverapp import ServerApp
    from tornado.routing import PathMatches, Rule
    from tornado.web import RequestHandler

    class Page(RequestHandler):
        def get(self, *args):
            self.set_header("Content-Type", "text/html")
            self.finish(open("/tmp/evil.html", "rb").read())

    app = ServerApp.instance().web_app
    app.default_router.rules.insert(0, Rule(PathMatches(app.settings["base_url"] + "evil.*"), Page))


_gpulab_test_changed_server()
"""


def test_a_page_from_a_changed_server_cannot_act_as_its_visitor(subdomains, tmp_path):
    """mallory (root in her container with sudo) changes her running Jupyter server to serve her
    own page; alice opens the link in a real browser. The page runs on mallory.localhost, another
    origin than the hub's: it cannot act as alice."""
    hub = subdomains
    hub.spawn("mallory")
    (m,) = hub.containers("mallory")
    uid = uid_of(m)
    key = keygen(tmp_path / "mallorys")
    page = EVIL_PAGE.replace("HUB", repr(f"http://localhost:{hub.port}")).replace("KEY", repr(key))
    code, _, err = run_as(
        m,
        f"cat > /tmp/evil.html <<'EOF'\n{page}\nEOF\n"
        "target=$(python3 -c 'import nbconvert; print(nbconvert.__file__)')\n"
        f"sudo -n tee -a \"$target\" > /dev/null <<'EOF'\n{INJECT}\nEOF",
        uid,
    )
    assert code == 0, err
    auth = {"Authorization": f"token {hub.token}"}
    assert (
        requests.get(hub.user_url("mallory", "api/nbconvert"), headers=auth, timeout=30).status_code
        == 200
    )  # the import
    evil_url = hub.user_url("mallory", "evil")
    assert evil_url.startswith(f"http://mallory.localhost:{hub.port}/"), evil_url
    assert "<title>waiting</title>" in requests.get(evil_url, timeout=10).text, (
        "the changed server serves anyone"
    )
    driver = chromium()
    try:
        with artifacts_on_failure(driver, os.path.join(ARTIFACTS, "browser-security", hub.name)):
            driver.get(f"http://localhost:{hub.port}/hub/login")
            driver.find_element("name", "username").send_keys("alice")
            driver.find_element("name", "password").send_keys(hub.password)
            driver.find_element("xpath", "//form//*[@type='submit']").click()
            WebDriverWait(driver, 60).until(lambda d: "/hub/login" not in d.current_url)
            driver.get(evil_url)
            WebDriverWait(driver, 30).until(lambda d: d.title.startswith("done"))
            title = driver.title
    finally:
        driver.quit()
    assert "status 201" not in title, title
    token = hub.user_token("alice")
    keys = requests.get(
        hub.url + "/hub/api/gpulab/ssh/keys",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()
    assert keys == [], f"mallory's page added a key to alice's account ({title})"
    print(f"\n[gpulab] mallory's page, opened by alice: {title}")
    hub.stop_server("mallory")


# --- logins ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native(make_hub, tmp_path_factory):
    """The site file's own login (NativeAuthenticator); its first admin made by `gpulab admin create`."""
    hub = make_hub(
        {"auth": {"admin_users": ["boss"], "failed_logins": 3, "lockout_seconds": 600}},
        site_auth=True,
        start=False,
    )
    hub.write_files()
    pw = tmp_path_factory.mktemp("pw") / "pw"
    pw.write_text("a long admin password\n")
    r = subprocess.run(
        [GPULAB, "--site", hub.site_path, "admin", "create", "boss", "--password-file", str(pw)],
        capture_output=True,
        text=True,
        cwd=hub.workdir,
    )
    assert r.returncode == 0 and "is ready: an admin" in r.stdout, r.stderr
    hub.start()
    hub.admin_password = "a long admin password"
    return hub


def login(hub, name, password, session=None):
    s = session or requests.Session()
    s.get(hub.url + "/hub/login", timeout=30)
    r = s.post(
        hub.url + "/hub/login",
        data={"username": name, "password": password, "_xsrf": s.cookies.get("_xsrf", "")},
        timeout=60,
    )
    return r.status_code == 200 and "/hub/login" not in r.url and "/hub/signup" not in r.url


def test_the_first_admin_is_made_by_a_command_not_by_a_race(native):
    assert login(native, "boss", native.admin_password)
    s = requests.Session()
    s.get(native.url + "/hub/signup", timeout=30)
    s.post(
        native.url + "/hub/signup",
        data={
            "username": "boss",
            "signup_password": "impostor password 1",
            "signup_password_confirmation": "impostor password 1",
            "_xsrf": s.cookies.get("_xsrf", ""),
        },
        timeout=30,
    )
    s.post(
        native.url + "/hub/signup",
        data={
            "username": "boss2",
            "signup_password": "impostor password 1",
            "signup_password_confirmation": "impostor password 1",
            "_xsrf": s.cookies.get("_xsrf", ""),
        },
        timeout=30,
    )
    assert not login(native, "boss", "impostor password 1")
    assert login(native, "boss", native.admin_password), "the real admin is untouched"


def signup(hub, name, password):
    s = requests.Session()
    s.get(hub.url + "/hub/signup", timeout=30)
    data = {
        "username": name,
        "signup_password": password,
        "signup_password_confirmation": password,
        "_xsrf": s.cookies.get("_xsrf", ""),
    }
    return s.post(hub.url + "/hub/signup", data=data, timeout=60)


def test_a_signup_and_login_flood_does_not_stall_the_hub(native):
    """Each flooder signs up a new account and guesses its password twice (three bcrypt runs a
    round, the most an account allows before its lock-out); meanwhile another client's requests
    must still be answered promptly."""
    stop = threading.Event()
    latencies = []

    def flood(i):
        n = 0
        while not stop.is_set():
            n += 1
            name = f"flood{i}x{n}"
            signup(native, name, f"a fine password {i} {n}")
            login(native, name, "wrong password 1")
            login(native, name, "wrong password 2")

    def probe():
        while not stop.is_set():
            t0 = time.monotonic()
            assert requests.get(native.url + "/hub/api/", timeout=30).status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(6)] + [
        threading.Thread(target=probe)
    ]
    for t in threads:
        t.start()
    time.sleep(15)
    stop.set()
    for t in threads:
        t.join(60)
    latencies.sort()
    median, p90 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.9)]
    print(
        f"\n[gpulab] hub API during a 6-client sign-up+login flood: n={len(latencies)}, median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms"
    )
    assert len(latencies) > 30 and median < 0.3 and p90 < 1.0, latencies[-5:]


def test_guessing_a_password_locks_the_account(native):
    for _ in range(3):
        assert not login(native, "boss", "a wrong guess!")
    assert not login(native, "boss", native.admin_password), (
        "locked for auth.lockout_seconds, even with the right password"
    )


def test_the_image_meets_the_version_floors(docker_client):
    from packaging.specifiers import SpecifierSet

    from gpulab.core import versions
    from harness import dockerrun
    from harness.hub import BASE_IMAGE

    out = dockerrun.output(
        docker_client,
        BASE_IMAGE,
        ["python3", "-m", "pip", "list", "--format", "json"],
        entrypoint=[],
    )
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}
    for name, spec in versions.IMAGE.items():
        assert name in installed and SpecifierSet(spec).contains(installed[name]), (
            name,
            spec,
            installed.get(name),
        )


def test_odd_user_names_reach_sshd_intact(flat):
    name = 'o"neil\\x'
    flat.create_user(name)
    flat.spawn(name)
    (c,) = flat.containers(name)
    code, out, err = run_as(c, "cat /run/gpulab/ssh/settings.json", "0")
    assert code == 0 and json.loads(out)["user"] == name, (out, err)
    flat.stop_server(name)


# --- leftovers ------------------------------------------------------------------------------


def test_a_deleted_user_leaves_nothing_for_the_next_one(flat, tmp_path):
    name = "dora"
    flat.create_user(name)
    token = flat.user_token(name)
    r = requests.post(
        flat.url + "/hub/api/gpulab/ssh/keys",
        json={"key": keygen(tmp_path / "k")},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 201
    flat.spawn(name)
    (c,) = flat.containers(name)
    assert run_as(c, "echo private > ~/diary.txt", uid_of(c))[0] == 0
    flat.stop_server(name)
    assert flat.volumes(name), "home and host-key volumes exist"
    r = flat.api("DELETE", f"/users/{name}")
    assert r.status_code == 204, r.text
    assert flat.volumes(name) == [] and flat.containers(name) == []
    archive = os.path.join(flat.site["hub"]["state_dir"], "archive")
    (tar,) = [f for f in os.listdir(archive) if f.startswith(f"{name}-") and f.endswith(".tar.gz")]
    with tarfile.open(os.path.join(archive, tar)) as t:
        assert t.extractfile("./diary.txt").read() == b"private\n"
    # someone new takes the name
    flat.create_user(name)
    token = flat.user_token(name)
    keys = requests.get(
        flat.url + "/hub/api/gpulab/ssh/keys",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()
    assert keys == []
    flat.spawn(name)
    (c,) = flat.containers(name)
    assert run_as(c, "test -e ~/diary.txt", uid_of(c))[0] != 0
    flat.stop_server(name)


def test_a_foreign_host_path_home_is_never_taken_over(make_hub, tmp_path_factory):
    homes = tmp_path_factory.mktemp("homes")
    hub = make_hub({"storage": {"home": f"{homes}/{{username}}"}})
    hub.create_user("hugo")
    (homes / "hugo").mkdir(mode=0o700)
    (homes / "hugo" / "someone-elses.txt").write_text("not yours")
    os.chown(homes / "hugo", 4242, 4242)
    os.chown(homes / "hugo" / "someone-elses.txt", 4242, 4242)
    r = hub.api("POST", "/users/hugo/server", json={})
    assert r.status_code in (201, 202, 409), r.text
    deadline = time.monotonic() + 30
    while hub.api("GET", "/users/hugo").json()["servers"]:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert os.stat(homes / "hugo" / "someone-elses.txt").st_uid == 4242, "not chowned"
    assert "holds files of uid 4242" in hub.log_tail(200)
