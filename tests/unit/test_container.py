import os

import pytest

from gpulab.core import identity as container
from gpulab.core.site.model import validate_site
from gpulab.hub import hostdirs
from gpulab.hub.form import render_form


@pytest.mark.parametrize(
    "username, login",
    [
        ("alice", "alice"),
        ("Bob.Smith@uni.edu", "bob_smith_uni_edu"),
        ("7seven", "u7seven"),
        ("名前", "u__"),
        ("x" * 60, "x" * 32),
    ],
)
def test_unix_name_is_valid_login(username, login):
    assert container.unix_name(username) == login
    assert container.UNIX_NAME.fullmatch(login)


def test_uid_is_unique_per_user_id():
    assert container.user_uid(20000, 1) != container.user_uid(20000, 2)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_prepare_host_dir_owned_by_user(tmp_path):
    target = tmp_path / "home" / "alice"
    hostdirs.prepare_host_dir(str(target), 20001, 100)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (20001, 100)
    assert oct(st.st_mode & 0o777) == "0o700"


def test_form_lists_only_profiles_escaped():
    profiles = validate_site(
        {
            "auth": {"admin_users": ["a"]},
            "profiles": [
                {"name": "b", "image": "i", "display_name": "<script>x</script>", "max_gpus": 2}
            ],
        }
    )["profiles"]
    html = render_form(profiles, "b")
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert 'name="profile" value="b"' in html and 'max="2"' in html
    # on a server without GPUs the field allows none, whatever the profile's most
    html = render_form(profiles, "b", {"gpus": [], "queue": []})
    assert 'max="0"' in html and 'data-max-gpus="0"' in html and "no GPUs" in html


def test_form_shows_live_gpu_availability():
    from gpulab.hub.form import render_gpu_table

    snap = {
        "gpus": [
            {
                "index": 0,
                "uuid": "GPU-a",
                "model": "A100",
                "memory_total": 40 << 30,
                "holders": [{"user": "<bob>", "server": "", "since": 0}],
                "free_slots": 0,
            },
            {
                "index": 1,
                "uuid": "GPU-b",
                "model": "A100",
                "memory_total": 40 << 30,
                "holders": [],
                "free_slots": 1,
            },
        ],
        "queue": [{"user": "carol", "gpus": 1, "since": 0}],
    }
    html = render_gpu_table(snap, now=3600 * 2 + 60 * 5)
    assert "held by &lt;bob&gt; (2h05m)" in html and "<bob>" not in html
    assert ">free<" in html and "40 GiB" in html and "1 spawn(s) waiting" in html
    assert "no GPUs" in render_gpu_table({"gpus": [], "queue": []})


def test_form_on_a_swarm_shows_nodes_and_offers_a_node_not_gpu_ids():
    from gpulab.core.options import options_from_form, validate_options
    from gpulab.hub.form import render_form

    profiles = [
        {
            "name": "a",
            "display_name": "A",
            "image": "i",
            "description": "",
            "gpus": 1,
            "max_gpus": 2,
        }
    ]
    snap = {
        "gpus": [
            {
                "index": 0,
                "uuid": "GPU-a",
                "model": "T4",
                "memory_total": 16 << 30,
                "holders": [],
                "free_slots": 1,
                "node": "w1",
            },
            {
                "index": 0,
                "uuid": "GPU-b",
                "model": "T4",
                "memory_total": 16 << 30,
                "holders": [],
                "free_slots": 1,
                "node": "<w2>",
            },
        ],
        "queue": [],
    }
    html = render_form(profiles, "a", snap, nodes={"w1", "<w2>"})
    assert (
        "<th>Node</th>" in html
        and "<td>w1</td>" in html
        and "&lt;w2&gt;" in html
        and "<w2>" not in html
    )
    assert 'name="node"' in html and 'name="gpu_ids"' not in html and "GPUs in this lab" in html
    # what the form posts is accepted: "any" node, or one of them
    for node in ("", "w1"):
        request = validate_options(
            options_from_form({"profile": ["a"], "gpus": ["1"], "node": [node]}),
            profiles,
            "a",
            nodes={"w1"},
            largest=2,
        )
        assert request.node == node
    single = render_form(profiles, "a", {**snap, "gpus": [{**g, "node": ""} for g in snap["gpus"]]})
    assert (
        "<th>Node</th>" not in single and 'name="gpu_ids"' in single and 'name="node"' not in single
    )
