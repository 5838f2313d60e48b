"""The default login, for real: NativeAuthenticator as the committed config sets it up."""

import os
import re
import subprocess
import sys

import requests

GPULAB = os.path.join(os.path.dirname(sys.executable), "gpulab")


def _session(hub):
    s = requests.Session()
    s.get(hub.url + "/hub/signup", timeout=30)
    return s


def _signup(hub, s, name, password):
    return s.post(
        hub.url + "/hub/signup",
        timeout=30,
        data={
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": s.cookies.get("_xsrf"),
        },
    )


def _login(hub, s, name, password):
    s.get(hub.url + "/hub/login", timeout=30)
    return s.post(
        hub.url + "/hub/login",
        data={"username": name, "password": password, "_xsrf": s.cookies.get("_xsrf")},
        timeout=30,
    )


def test_sign_up_admin_approval_and_login(make_hub):
    hub = make_hub(
        site_auth=True
    )  # the site file says auth.admin_users: [admin]; type defaults to native
    login_page = requests.get(hub.url + "/hub/login", timeout=30).text
    assert 'href="/hub/signup"' in login_page, "the login page offers sign-up"

    # an admin name cannot be taken by signing up first; the admin is made on the hub's machine
    _signup(hub, _session(hub), "admin", "an-impostor-password")
    assert _login(hub, _session(hub), "admin", "an-impostor-password").url.endswith("/hub/login")
    pw = os.path.join(hub.workdir, "admin-password")
    with open(pw, "w") as f:
        f.write("correct-horse-battery\n")
    r = subprocess.run(
        [GPULAB, "--site", hub.site_path, "admin", "create", "admin", "--password-file", pw],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "is ready: an admin" in r.stdout, r.stderr
    admin = _session(hub)
    r = _login(hub, admin, "admin", "correct-horse-battery")
    assert r.url.endswith("/hub/spawn"), r.url
    form = admin.get(hub.url + "/hub/spawn", timeout=30).text
    assert 'name="profile"' in form and "GPUs on this server" in form

    student = _session(hub)
    r = _signup(hub, student, "student", "short")
    assert "student" not in [u["name"] for u in hub.api("GET", "/users").json()], (
        "a too-short password creates nothing"
    )
    _signup(hub, student, "student", "another-long-pass")
    r = _login(hub, student, "student", "another-long-pass")
    assert r.url.endswith("/hub/login"), "not approved yet"
    assert (
        requests.get(
            hub.url + "/hub/authorize", cookies=student.cookies, timeout=30, allow_redirects=False
        ).status_code
        != 200
    )

    page = admin.get(hub.url + "/hub/authorize", timeout=30)
    assert page.status_code == 200 and re.search(r"/hub/authorize/student", page.text)
    assert admin.get(hub.url + "/hub/authorize/student", timeout=30).status_code == 200
    r = _login(hub, student, "student", "another-long-pass")
    assert r.url.endswith("/hub/spawn"), r.url
    r = _login(hub, _session(hub), "student", "wrong-password-1")
    assert r.url.endswith("/hub/login")
