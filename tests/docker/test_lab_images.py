"""A lab's own images as profiles: a docker-stacks-shaped image (non-root default user with its own
home, its own start script, no sshd, no gpulab) starts under gpulab's start with the user's uid and
home; what it lacks (SSH, TensorBoard) is said in the spawn form, not found out by a failed start;
the same image with sshd added gets SSH."""

import re

import pytest
import requests

from harness.hub import BASE_IMAGE, free_port_base
from harness.images import build_stacks
from harness.ssh import SSH, Browser, keygen, messages


@pytest.fixture(scope="module")
def lab(make_hub, tmp_path_factory, docker_client):
    stacks, stacks_sshd = build_stacks(), build_stacks(with_sshd=True)
    profiles = [
        {"name": "base", "image": BASE_IMAGE, "description": "gpulab's own"},
        {"name": "stacks", "image": stacks, "description": "a docker-stacks image"},
        {"name": "stacks-sshd", "image": stacks_sshd, "description": "the same with sshd"},
    ]
    hub = make_hub({"profiles": profiles, "ssh": {"port_base": free_port_base()}})
    return {"hub": hub, "work": tmp_path_factory.mktemp("lab-images")}


PROCS = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        uid = open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0]
        args = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
    except OSError:
        continue
    print(uid, args)
"""


def form(hub, name):
    r = requests.get(
        f"{hub.url}/hub/spawn/{name}", cookies=Browser(hub, name).cookies(), timeout=120
    )
    assert r.status_code == 200, r.text
    return r.text


def limited(page, profile):
    """{feature: reason} the form says of ``profile`` (CUDA aside: this machine builds gpulab's
    images on a plain Debian base, which the form also says)."""
    block = page.split(f'value="{profile}"', 1)[1].split("</label>", 1)[0]
    said = dict(re.findall(r'data-feature="([^"]+)">[^:]+: ([^<]+)<', block))
    return {k: v for k, v in said.items() if k != "CUDA"}


def test_the_form_says_what_each_image_lacks(lab):
    hub = lab["hub"]
    hub.create_user("fay")
    page = form(hub, "fay")
    assert limited(page, "base") == {}
    assert "without CUDA" in page, "gpulab's base here has no CUDA, and the form says so"
    stacks = limited(page, "stacks")
    assert "OpenSSH server" in stacks["SSH"] and "TensorBoard proxy" in stacks["TensorBoard"], (
        stacks
    )
    assert set(limited(page, "stacks-sshd")) == {"TensorBoard"}, "sshd added: SSH works there"
    assert "gpulab-unavailable" not in page


def test_a_docker_stacks_image_runs_as_the_user_with_their_home(lab, docker_client):
    hub = lab["hub"]
    hub.create_user("gil")
    hub.spawn("gil", {"profile": "stacks"}, timeout=180)
    (c,) = [c for c in hub.containers("gil") if c.status == "running"]
    uid = c.labels["gpulab.uid"]
    # the server is the image's own jupyterhub-singleuser, run as the user (not jovyan, not root)
    procs = c.exec_run(["python3", "-c", PROCS]).output.decode()
    server = [line for line in procs.splitlines() if "jupyterhub-singleuser" in line]
    assert server and all(line.split()[0] == uid for line in server), procs
    # files written through Jupyter are the user's, in the user's home (the persistent one)
    token = hub.user_token("gil")
    r = requests.put(
        hub.user_url("gil", "api/contents/mine.txt"),
        json={"type": "file", "format": "text", "content": "mine"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    home = c.attrs["Config"]["WorkingDir"]
    owner = c.exec_run(["stat", "-c", "%u %a", f"{home}/mine.txt", home]).output.decode().split()
    assert owner[0] == uid and owner[2] == uid and owner[3] == "700", owner
    assert any(m["Destination"] == home for m in c.attrs["Mounts"]), "the home is the user's volume"
    # SSH is off in this image (no sshd): no port published, no sshd started
    assert not (c.attrs["HostConfig"].get("PortBindings") or {}).get("22/tcp")
    assert "sshd" not in procs
    hub.stop_server("gil")


def test_the_same_image_with_sshd_gets_ssh(lab):
    hub, work = lab["hub"], lab["work"]
    hub.create_user("hal")
    key = work / "hal_key"
    page = Browser(hub, "hal")
    r = page.post(action="add_key", key=keygen(key))
    assert r.status_code == 200 and messages(r.text, "ok"), r.text
    port = int(re.search(r"^ +Port (\d+)$", page.page(), re.M).group(1))
    hub.spawn("hal", {"profile": "stacks-sshd"}, timeout=180)
    (c,) = [c for c in hub.containers("hal") if c.status == "running"]
    r = SSH(str(work), key).run(SSH.direct(port), "hal", "id", "-u")
    assert r.returncode == 0 and r.stdout.strip() == c.labels["gpulab.uid"], r.stderr
    hub.stop_server("hal")
