"""A user's uid inside their container: from the hub, from the lab's sign-in service, or from a
map in the site file (gpulab.core.identity and the site file's users section)."""

import copy

import pytest

from gpulab.core import identity as ids
from gpulab.core.site.model import validate_site
from gpulab.core.site.schema import ConfigError

BASE = dict(uid_base=20000, gid=100, user_id=7, username="ada")


def test_hub_uids_are_the_base_plus_the_hub_id():
    assert ids.resolve("hub", **BASE) == (20007, 100)


def test_a_claimed_uid_and_gid_are_used_and_a_missing_one_refuses_with_the_reason():
    assert ids.resolve("claim", **BASE, info={"uid": 5001, "gid": 5000}) == (5001, 5000)
    assert ids.resolve("claim", **BASE, info={"uid": 5001, "gid": None}) == (5001, 100)
    with pytest.raises(ids.UidError, match="gave no uidNumber for ada"):
        ids.resolve("claim", **BASE, info={}, claim="uidNumber")
    with pytest.raises(ids.UidError, match="outside 1000"):
        ids.resolve("claim", **BASE, info={"uid": 0})


def test_claims_are_read_as_numbers_and_bad_ones_kept_as_none():
    claims = {"uidNumber": "5001", "gidNumber": 5000, "bad": "root", "low": 33}
    assert ids.claimed_ids(claims, "uidNumber", "gidNumber") == {"uid": 5001, "gid": 5000}
    assert ids.claimed_ids(claims, "bad", "") == {"uid": None, "gid": None}
    assert ids.claimed_ids(claims, "low", "missing") == {"uid": None, "gid": None}


def test_the_map_names_each_users_uid_and_nobody_else_gets_one():
    uid_map = {"ada": {"uid": 5001, "gid": None}, "alan": {"uid": 5002, "gid": 6000}}
    assert ids.resolve("map", **BASE, uid_map=uid_map) == (5001, 100)
    assert ids.resolve("map", **{**BASE, "username": "alan"}, uid_map=uid_map) == (5002, 6000)
    with pytest.raises(ids.UidError, match="eve has no uid in the site file's users.uid_map"):
        ids.resolve("map", **{**BASE, "username": "eve"}, uid_map=uid_map)


MINIMAL = {
    "auth": {"admin_users": ["admin"]},
    "profiles": [{"name": "base", "image": "localhost/gpulab/base:latest"}],
}
OIDC = {
    "type": "oidc",
    "admin_users": ["ada"],
    "oidc": {
        "client_id": "gpulab",
        "client_secret_env": "S",
        "callback_url": "https://hub/hub/oauth_callback",
        "authorize_url": "https://id/auth",
        "token_url": "https://id/token",
        "userdata_url": "https://id/me",
        "allowed_groups": ["lab"],
        "allowed_users": ["ada"],
    },
}


def site(users, auth=None):
    raw = copy.deepcopy(MINIMAL)
    raw["users"] = users
    if auth:
        raw["auth"] = auth
    return validate_site(raw)


def test_the_site_file_checks_the_uid_settings():
    s = site({"uid_source": "map", "uid_map": {"ada": 5001, "alan": {"uid": 5002, "gid": 6000}}})
    assert s["users"]["uid_map"] == {
        "ada": {"uid": 5001, "gid": None},
        "alan": {"uid": 5002, "gid": 6000},
    }
    assert site({"uid_source": "claim"}, OIDC)["users"]["uid_claim"] == "uidNumber"
    refusals = [
        ({"uid_source": "claim"}, None, 'users.uid_source: "claim" takes uids from the sign-in'),
        ({"uid_source": "map"}, None, "users.uid_map: is required"),
        ({"uid_source": "map", "uid_map": {"a": 5001, "b": 5001}}, None, "uid 5001 is also a's"),
        ({"uid_source": "map", "uid_map": {"a": 0}}, None, "users.uid_map.a.uid: uid 0 is outside"),
        ({"uid_source": "map", "uid_map": {"a": "x"}}, None, "users.uid_map.a: must be a uid"),
        ({"uid_map": {"a": 5001}}, None, "users.uid_map: is used only when"),
        ({"uid_source": "ldap"}, None, "users.uid_source"),
    ]
    for users, auth, message in refusals:
        with pytest.raises(ConfigError) as info:
            site(users, auth)
        assert message in str(info.value), (users, str(info.value))
