"""HTTPS on the hub's own port (hub.tls), a plain-HTTP port that redirects, SSH through the hub over
wss://, with a certificate from a test CA that only this test trusts."""

import os

import pytest
import requests

from harness.hub import free_port
from harness.ssh import GPULAB_CLIENT, SSH, keygen
from harness.tlsca import TestCA


@pytest.fixture(scope="module")
def tls_hub(make_hub, tmp_path_factory):
    ca = TestCA(str(tmp_path_factory.mktemp("ca")))
    cert, key = ca.issue("hub", ips=["127.0.0.1"], dns=["localhost"])
    hub = make_hub({"ssh": {"port_base": 0}}, start=False)
    hub.url = f"https://127.0.0.1:{hub.port}"
    hub.redirect_port = free_port()
    hub.site["hub"]["bind_url"] = hub.url
    hub.site["hub"]["tls"] = {"cert": cert, "key": key, "redirect_port": hub.redirect_port}
    hub.ca = ca.cert
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = ca.cert  # the harness's own requests trust the test CA
    try:
        yield hub.start()
    finally:
        if old is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = old


def test_https_with_the_labs_certificate_and_a_redirect(tls_hub):
    hub = tls_hub
    r = requests.get(hub.url + "/hub/login", verify=hub.ca, timeout=30)
    assert r.status_code == 200 and "<form" in r.text
    # once a browser came by HTTPS it never uses plain HTTP here again (HSTS)
    assert r.headers["Strict-Transport-Security"].startswith("max-age="), r.headers
    with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust the lab's CA
        requests.get(hub.url + "/hub/login", verify=requests.certs.where(), timeout=30)
    r = requests.get(
        f"http://127.0.0.1:{hub.redirect_port}/hub/login?next=%2Fhub%2Fhome",
        allow_redirects=False,
        timeout=30,
    )
    assert (
        r.status_code == 301 and r.headers["Location"] == f"{hub.url}/hub/login?next=%2Fhub%2Fhome"
    )
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the HTTPS port
        requests.get(f"http://127.0.0.1:{hub.port}/hub/login", timeout=10)


def test_ssh_through_the_hub_over_wss(tls_hub, tmp_path):
    hub = tls_hub
    hub.create_user("tess")
    token_file = tmp_path / "token"
    token_file.write_text(hub.user_token("tess"))
    key = tmp_path / "key"
    pub = keygen(key)
    r = requests.post(
        hub.url + "/hub/api/gpulab/ssh/keys",
        json={"key": pub},
        headers={"Authorization": f"token {token_file.read_text()}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    hub.spawn("tess")
    proxy = f"{GPULAB_CLIENT} ssh-proxy --hub {hub.url} --user tess --token-file {token_file} --ca-file {hub.ca}"
    way = (["-o", f"ProxyCommand={proxy}", "-o", "HostKeyAlias=gpulab-tls"], "gpulab-hub")
    out = SSH(str(tmp_path), key).run(way, "tess", "echo", "over-wss")
    assert out.returncode == 0 and out.stdout.strip() == "over-wss", out.stderr
    # without the lab's CA the client refuses the hub's certificate
    untrusted = (
        ["-o", f"ProxyCommand={proxy.rsplit(' --ca-file', 1)[0]}", "-o", "HostKeyAlias=gpulab-tls"],
        "gpulab-hub",
    )
    bad = SSH(str(tmp_path), key).run(untrusted, "tess", "true", timeout=60)
    assert bad.returncode != 0 and "certificate" in bad.stderr.lower(), bad.stderr
    hub.stop_server("tess")
