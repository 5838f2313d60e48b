"""Bad input at volume, against a real hub: about a thousand malformed requests per endpoint family
of gpulab's API (and JupyterHub's spawn API and spawn form with gpulab's options): fuzzed and
truncated JSON, huge bodies, wrong types, unicode, overlong and path-traversal names, bad query
arguments, wrong methods and content types, mostly with the user's own token, also with another
user's name in the path. The hub answers each with a 4xx (a read may answer 2xx), never a 5xx and
never a hang; nothing is created or lost; and its memory stays flat after a warm-up round.

The cases come from a fixed seed (``GPULAB_FUZZ_SEED``), so a failure reproduces."""

import base64
import collections
import json
import os
import random
import sqlite3
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlencode

import pytest
import requests

from harness import gpuhost
from harness.hub import BASE_IMAGE

SEED = int(os.environ.get("GPULAB_FUZZ_SEED", "1717"))
PER_FAMILY = int(os.environ.get("GPULAB_FUZZ_PER_FAMILY", "1000"))
WARM_UP = min(150, PER_FAMILY)  # requests per family before the hub's memory is measured
MAX_GROWTH_MIB = 30
TIMEOUT = 20  # seconds: an answer later than this is a hang
WORKERS = 3
REFUSED_LATE = "302, then refused"  # the spawn form's answer when validating took over 1 s
SAFE = ("GET", "HEAD", "OPTIONS")  # may answer 2xx: they read, create nothing
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
GPUS = gpuhost.devices()[:2]
SITE = {
    "gpus": {"devices": GPUS, "readings": "push", "wait": False},
    "profiles": [
        {"name": "gpu", "image": BASE_IMAGE, "gpus": 1, "max_gpus": 1, "mem_limit": "1G"},
        {"name": "cpu", "image": BASE_IMAGE, "gpus": 0, "max_gpus": 0, "mem_limit": "1G"},
    ],
    "jobs": {"max_hours": 1, "default_hours": 0.5, "max_per_user": 3},
}


@dataclass
class Case:
    method: str
    path: str  # under the hub's URL
    token: str = "alice"  # whose token: alice, admin, none, or cookie (alice's browser login)
    params: list = field(default_factory=list)
    headers: dict = field(default_factory=dict)
    body: bytes = None


# --- garbage ---

UNICODE = [
    "ünïcødé",
    "名前",
    "💥" * 3,
    "\u202eevil",
    "\u0000",
    "\x7f\x1b[31m",
    "a\u0301" * 5,
    "\ufeff",
    "\ud800",  # a lone surrogate (valid JSON escape, not encodable as UTF-8)
    "\udfff\ud800",
]
TRAVERSAL = [
    "..",
    "../..",
    "../../etc/passwd",
    "..%2f..%2fetc",
    "%2e%2e",
    "./.",
    "alice/../bob",
    "C:\\Windows",
    "~root",
    "/etc/shadow",
    "alice%00",
    "alice\x00bob",
]
WEIRD_TEXT = [
    "",
    " ",
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "NaN",
    "-Infinity",
    "0x10",
    "1_000",
    "９",
    "٣",
    "99999999999999999999999999",
    "'; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "%s%s%n",
    "\r\nX-Injected: 1",
]


def text(rng):
    pick = rng.random()
    if pick < 0.25:
        return rng.choice(UNICODE) * rng.randint(1, 3)
    if pick < 0.45:
        return rng.choice(TRAVERSAL)
    if pick < 0.7:
        return rng.choice(WEIRD_TEXT)
    if pick < 0.8:
        return "x" * rng.choice((64, 255, 256, 1000, 5000, 70000))
    return "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 40)))


def scalar(rng):
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2,
            7,
            2**31,
            2**63,
            10**40,
            -(10**40),
            0.5,
            -0.0,
            1e308,
            -1e308,
            text(rng),
            text(rng),
        ]
    )


def value(rng, depth=0):
    pick = rng.random()
    if depth > 3 or pick < 0.55:
        return scalar(rng)
    if pick < 0.75:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {text(rng)[:40]: value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def dumps(obj):
    return json.dumps(obj).encode()  # lone surrogates go out as JSON escapes


def malformed(rng):
    """Bytes that are not the JSON object an endpoint wants (not JSON, or not an object)."""
    depth = rng.choice((50, 1000, 5000, 100000))
    return rng.choice(
        [
            b"{",
            b'{"key": ',
            b"{'single': 'quotes'}",
            b'{"a": 1,}',
            b"[1, 2",
            b"NaN",
            b"Infinity",
            b"-",
            b"\xff\xfe\x00{",
            b'{"k": "\xc3\x28"}',  # invalid UTF-8 inside a string
            b'\xef\xbb\xbf{"k": 1}',  # a BOM
            b"\x00" * 64,
            b"1" * 5000,  # past Python's int digit limit
            b'{"command": ' + b"9" * 5000 + b"}",
            b"[" * depth + b"]" * depth,
            b'{"a":' * depth + b"1" + b"}" * depth,
            b"[" * depth,
            b'"\\ud800"',
            b'{"\\u0000": "\\u0000"}',
            b"<xml/>",
            b"key=value&key=other",
            bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))),
            dumps(value(rng)),
            dumps([value(rng) for _ in range(3)]),
            dumps(text(rng)),
        ]
    )


def huge(rng):
    """A body of 1 or 2 MiB (past every limit of gpulab's API): JSON with a huge string, a huge
    array, or plain bytes. (Bigger ones are refused the same way, but the heap they leave behind
    in the hub, freed, would blur its memory reading; the regressions send one of 8 MiB.)"""
    size = rng.choice((1, 2)) << 20
    kind = rng.random()
    if kind < 0.4:
        return dumps({"key": "A" * size, "command": ["x" * size], "note": "n" * size})[: size * 2]
    if kind < 0.7:
        return b"[" + b"0," * (size // 2) + b"0]"
    return os.urandom(size)


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=broken",
    "multipart/form-data",
    "application/octet-stream",
    "}{not a type",
    None,
]


def json_body(rng, valid_object):
    """A request body: mostly ``valid_object`` (already poisoned by the caller), else garbage."""
    pick = rng.random()
    if pick < 0.5:
        body = dumps(valid_object)
    elif pick < 0.7:
        body = dumps(value(rng))
    elif pick < 0.95:
        body = malformed(rng)
    elif pick < 0.98:
        body = huge(rng)
    else:
        body = b""
    ctype = "application/json" if rng.random() < 0.6 else rng.choice(CONTENT_TYPES)
    return body, ({"Content-Type": ctype} if ctype else {})


def query(rng):
    if rng.random() < 0.5:
        return []
    keys = ["since", "wait", "fingerprint", "server", "next", "limit", "offset", "x", "_xsrf"]
    out = []
    for _ in range(rng.randint(1, 6)):
        k = rng.choice(keys) if rng.random() < 0.7 else text(rng)[:100]
        out.append((k, str(scalar(rng))[:3000]))
    return out


# --- names in paths ---


def seg(value_):
    """A path segment as a client sends it, percent-encoded UTF-8 (a lone surrogate becomes "?").

    Not invalid UTF-8 in a path: configurable-http-proxy, in front of the hub, answers such a
    path (``/hub/api/users/%ff/...``) with 500 ("URIError: URI malformed") before the hub sees
    it; bodies and query arguments carry invalid UTF-8 instead."""
    return quote(value_, safe="", errors="replace") if value_ else value_


def user_seg(rng):
    """Mostly alice (the token's own user), else someone else or a name no user has."""
    pick = rng.random()
    if pick < 0.65:
        return "alice"
    if pick < 0.75:
        return rng.choice(["bob", "admin"])
    if pick < 0.8:
        return "nobody-" + str(rng.randint(0, 10**6))
    if pick < 0.85:
        return "a" * rng.choice((256, 1000, 4000))
    if pick < 0.92:
        return seg(rng.choice(UNICODE + TRAVERSAL))
    return rng.choice(["ALICE", "alice ", " alice", "alice%20", "alice%2F..", "%61lice", "%00"])


def name_seg(rng, real=()):
    """An id, tag or archive name in a path: garbage, or now and then a real one (``real``)."""
    pick = rng.random()
    if real and pick < 0.15:
        return rng.choice(real)
    if pick < 0.45:
        return seg(text(rng)[:300]) or "x"
    if pick < 0.6:
        return str(rng.choice((0, -1, 1, 2, 10**20, 2**63, 9 * 10**4000 % 10**30)))
    if pick < 0.7:
        return "9" * rng.choice((19, 100, 5000))
    if pick < 0.85:
        return seg(rng.choice(TRAVERSAL)) or "x"
    return rng.choice(
        ["home-20240101-000000.tar.gz", "home-x.tar.gz", ".home.part", "%00", "%2e%2e%2f"]
    )


def method(rng, usual, weight=0.75):
    return usual if rng.random() < weight else rng.choice(METHODS)


# --- the endpoint families (each returns n cases) ---


def poisoned(rng, fields, poisons):
    """A dict of ``fields`` with random values, plus at least one value that can never be valid."""
    body = {k: value(rng) for k in rng.sample(fields, rng.randint(0, len(fields)))}
    for _ in range(rng.randint(1, 2)):
        k, v = rng.choice(poisons)
        body[k] = v(rng) if callable(v) else v
    return body


def fam_version(rng, n, real):
    out = []
    for _ in range(n):
        m = method(rng, "GET", 0.6)
        body, headers = json_body(rng, value(rng)) if m not in SAFE else (None, {})
        out.append(Case(m, "/hub/api/gpulab/version", "none", query(rng), headers, body))
    return out


def fam_gpus(rng, n, real):
    out = []
    for _ in range(n):
        m = method(rng, "GET", 0.6)
        body, headers = json_body(rng, value(rng)) if m not in SAFE else (None, {})
        who = rng.choice(["alice", "admin", "none"])
        out.append(Case(m, "/hub/api/gpulab/gpus", who, query(rng), headers, body))
    return out


READING_POISONS = [
    ("gpus", lambda rng: [{"uuid": "GPU-not-here-" + text(rng)[:20], "utilization": 1}]),
    ("gpus", lambda rng: [{"uuid": [1], "utilization": 1, "memory_used": 1, "memory_total": 1}]),
    ("gpus", lambda rng: [{"uuid": {}, "utilization": 1, "memory_used": 1, "memory_total": 1}]),
    (
        "gpus",
        lambda rng: [
            {"uuid": "GPU-x", "utilization": 1, "memory_used": 1e308 * 10, "memory_total": 1}
        ],
    ),
    (
        "gpus",
        lambda rng: [
            {"uuid": "GPU-x", "utilization": "1", "memory_used": 1, "memory_total": 1e400 * 0}
        ],
    ),
    (
        "gpus",
        lambda rng: [
            {"uuid": "GPU-x", "utilization": 1, "memory_used": 1, "memory_total": 1, "processes": 5}
        ],
    ),
    (
        "gpus",
        lambda rng: [
            {
                "uuid": GPUS[0]["uuid"],
                "utilization": 1,
                "memory_used": 1,
                "memory_total": 1,
                "processes": [{"pid": value(rng), "memory_used": value(rng)}],
            },
            {"uuid": value(rng)},
        ],
    ),
    ("gpus", lambda rng: [value(rng) for _ in range(rng.randint(1, 5))]),
    ("gpus", lambda rng: [{}] * 300),
    ("gpus", lambda rng: value(rng) if rng.random() < 0.5 else "not a list"),
    ("node", lambda rng: [text(rng)]),
    (
        "gpus",
        lambda rng: [
            {"uuid": GPUS[0]["uuid"], "utilization": 101, "memory_used": 0, "memory_total": 1}
        ],
    ),
    (
        "gpus",
        lambda rng: [
            {"uuid": GPUS[0]["uuid"], "utilization": "NaN", "memory_used": 0, "memory_total": 1}
        ],
    ),
    (
        "gpus",
        lambda rng: [
            {"uuid": GPUS[0]["uuid"], "utilization": -1, "memory_used": 0, "memory_total": 1}
        ],
    ),
]


def fam_readings(rng, n, real):
    out = []
    for _ in range(n):
        m = method(rng, "POST")
        body, headers = json_body(rng, poisoned(rng, ["node", "gpus", "time"], READING_POISONS))
        if m in SAFE:
            body = None
        who = "admin" if rng.random() < 0.7 else rng.choice(["alice", "none"])
        out.append(Case(m, "/hub/api/gpulab/readings", who, query(rng), headers, body))
    return out


def fake_key(rng):
    """Key lines that are not valid public keys (truncated, mislabelled, trailing bytes, ...)."""

    def s(b):
        return struct.pack(">I", len(b)) + b

    kinds = [
        lambda: "ssh-ed25519 " + base64.b64encode(s(b"ssh-ed25519") + s(os.urandom(31))).decode(),
        lambda: "ssh-ed25519 " + base64.b64encode(s(b"ssh-rsa") + s(os.urandom(32))).decode(),
        lambda: "ssh-ed25519 " + base64.b64encode(s(b"ssh-ed25519")).decode(),
        lambda: "ssh-ed25519 " + base64.b64encode(b"\xff\xff\xff\xff" + b"x").decode(),
        lambda: (
            "ssh-ed25519 "
            + base64.b64encode(s(b"ssh-ed25519") + s(os.urandom(32)) + b"xx").decode()
        ),
        lambda: "ssh-rsa " + base64.b64encode(s(b"ssh-rsa") + s(b"\x01") + s(b"\x02")).decode(),
        lambda: "ssh-rsa " + base64.b64encode(s(b"ssh-rsa") + s(b"")).decode(),
        lambda: (
            "ecdsa-sha2-nistp256 "
            + base64.b64encode(s(b"ecdsa-sha2-nistp256") + s(b"nistp256") + s(b"")).decode()
        ),
        lambda: (
            "ecdsa-sha2-nistp521 "
            + base64.b64encode(s(b"ecdsa-sha2-nistp521") + s(b"nistp256") + s(b"\x04")).decode()
        ),
        lambda: (
            "sk-ssh-ed25519@openssh.com "
            + base64.b64encode(s(b"sk-ssh-ed25519@openssh.com") + s(os.urandom(32))).decode()
        ),
        lambda: "ssh-ed25519 not-base64!!",
        lambda: "ssh-ed25519",
        lambda: "-----BEGIN OPENSSH PRIVATE KEY-----",
        lambda: 'command="rm -rf /" ssh-ed25519 AAAA',
        lambda: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\nssh-rsa AAAA",
        lambda: text(rng),
        lambda: value(rng),
    ]
    return rng.choice(kinds)()


def fam_ssh(rng, n, real):
    out = []
    for _ in range(n):
        where = rng.random()
        if where < 0.2:
            m = method(rng, "GET", 0.6)
            path = rng.choice(
                ["/hub/api/gpulab/ssh/account", "/hub/api/gpulab/ssh/authorized_keys"]
            )
        else:
            path = "/hub/api/gpulab/ssh/keys"
            m = (
                rng.choice(["POST", "POST", "DELETE", "GET"])
                if rng.random() < 0.8
                else method(rng, "PUT", 0)
            )
        params = query(rng)
        body, headers = None, {}
        if m == "DELETE" and rng.random() < 0.8:
            params = [
                *params,
                ("fingerprint", rng.choice(["SHA256:" + text(rng)[:60], text(rng)[:200], ""])),
            ]
        if m not in SAFE:
            key = fake_key(rng)
            obj = {"key": key} if rng.random() < 0.8 else {"key": key, "extra": value(rng)}
            body, headers = json_body(rng, obj)
        who = "alice" if rng.random() < 0.9 else rng.choice(["admin", "none"])
        out.append(Case(m, path, who, params, headers, body))
    return out


def fam_home_backups(rng, n, real):
    archives = real["archives"]
    out = []
    for _ in range(n):
        user = user_seg(rng)
        alice = unquote(user) == "alice"  # (the hub decodes the path: %61lice is alice)
        base = f"/hub/api/gpulab/users/{user}/home-backups"
        kind = rng.random()
        archive = name_seg(rng, archives)
        if alice and archive in archives:
            archive += "x"  # deleting or restoring alice's real backup would be a valid request
        if kind < 0.3:
            # the list; a backup (which takes no body) is started by any POST: others' names only
            m = method(rng, rng.choice(["GET", "POST"]), 0.8)
            if alice and m == "POST":
                base = base.replace(user, rng.choice(["bob", "admin", "nobody"]), 1)
            path = base
        elif kind < 0.65:
            m = method(rng, "DELETE", 0.8)
            path = f"{base}/{archive}"
        else:
            m = method(rng, "POST", 0.8)
            path = f"{base}/{archive}/restore"
        body, headers = json_body(rng, value(rng)) if m not in SAFE else (None, {})
        out.append(Case(m, path, "alice", query(rng), headers, body))
    return out


JOB_FIELDS = [
    "command",
    "notebook",
    "parameters",
    "gpus",
    "nodes",
    "profile",
    "save",
    "time",
    "name",
]
JOB_POISONS = [
    ("command", lambda rng: ["\ud800"]),
    ("command", lambda rng: ["python", "a\ud800b"]),
    ("command", lambda rng: "\udfff"),
    ("command", []),
    ("command", ""),
    ("command", lambda rng: [value(rng), 1]),
    ("command", lambda rng: ["x" * 70000]),
    ("command", lambda rng: ["a"] * 5000),
    ("command", ["echo", "\x00"]),
    ("gpus", lambda rng: rng.choice([0, -1, 99, 10**40, "1", 1.5, True, None, [1]])),
    ("nodes", lambda rng: rng.choice([0, -1, 99, 10**40, "1", 1.5, True, [1]])),
    ("profile", lambda rng: rng.choice(["nope", ["gpu"], {"name": "gpu"}, 1, text(rng)])),
    ("save", lambda rng: rng.choice(["nope", ["x"], 1, text(rng) or "x"])),
    (
        "time",
        lambda rng: rng.choice(
            ["0", "-1h", "1e999", "NaN", "48h", "2d", 10**40, 1e308, "1.5.5h", [1], "\ud800"]
        ),
    ),
    ("name", lambda rng: rng.choice(["-x", "a" * 65, "../x", "\ud800", "名前", "a\nb", 5, ["x"]])),
    (
        "notebook",
        lambda rng: rng.choice(["/etc/x.ipynb", "../x.ipynb", "x.txt", "a\ud800.ipynb", 5, ["x"]]),
    ),
    (
        "parameters",
        lambda rng: rng.choice([{"1x": 1}, {"a": [1]}, {"a": {"b": 1}}, [1], "x", {"\ud800": 1}]),
    ),
    ("bogus", lambda rng: value(rng)),
    (lambda rng: text(rng)[:40] or "k", lambda rng: value(rng)),
]


def fam_jobs(rng, n, real):
    jobs = [str(j) for j in real["jobs"]]
    out = []
    for _ in range(n):
        user = user_seg(rng)
        base = f"/hub/api/gpulab/users/{user}/jobs"
        kind = rng.random()
        params = query(rng)
        body, headers = None, {}
        if kind < 0.45:
            m = method(rng, "POST", 0.85)
            path = base
            poisons = [(k(rng) if callable(k) else k, v) for k, v in JOB_POISONS]
            body, headers = json_body(rng, poisoned(rng, JOB_FIELDS, poisons))
            if body == b"" or m in SAFE:
                body = None if m in SAFE else b"[]"
        elif kind < 0.7:
            m = method(rng, rng.choice(["GET", "DELETE"]), 0.85)
            path = f"{base}/{name_seg(rng, jobs)}"
        else:
            m = method(rng, "GET", 0.85)
            path = f"{base}/{name_seg(rng, jobs)}/log"
            params = [
                *params,
                *[
                    (
                        k,
                        rng.choice(
                            [
                                "-1",
                                "0",
                                "1e999",
                                "inf",
                                "-inf",
                                "nan",
                                "9" * 5000,
                                "x",
                                "",
                                "٣",
                                "1e-300",
                                "0x1",
                                "5",
                            ]
                        ),
                    )
                    for k in rng.sample(["since", "wait"], rng.randint(0, 2))
                ],
            ]
        if m not in SAFE and body is None:
            body, headers = json_body(rng, value(rng))
        out.append(Case(m, path, "alice", params, headers, body))
    return out


def fam_keep(rng, n, real):
    out = []
    for _ in range(n):
        m = method(rng, "POST", 0.85)
        obj = {"server": rng.choice(["", text(rng), value(rng), "x" * 300])}
        body, headers = json_body(rng, obj) if m not in SAFE else (None, {})
        out.append(
            Case(
                m, f"/hub/api/gpulab/users/{user_seg(rng)}/keep", "alice", query(rng), headers, body
            )
        )
    return out


def fam_notices(rng, n, real):
    out = []
    for _ in range(n):
        m = method(rng, "GET", 0.7)
        body, headers = json_body(rng, value(rng)) if m not in SAFE else (None, {})
        out.append(
            Case(
                m,
                f"/hub/api/gpulab/users/{user_seg(rng)}/notices",
                "alice",
                query(rng),
                headers,
                body,
            )
        )
    return out


def fam_saves(rng, n, real):
    out = []
    for _ in range(n):
        user = user_seg(rng)
        if rng.random() < 0.5:
            # alice's list, and a save of a server that is not running (409) or with bad fields
            m = method(rng, rng.choice(["GET", "POST"]), 0.85)
            path = f"/hub/api/gpulab/users/{user}/saves"
            obj = {
                "server": rng.choice(["", value(rng)]),
                "note": rng.choice(["", value(rng), "n" * 20000]),
            }
        else:
            m = method(rng, "DELETE", 0.85)
            path = f"/hub/api/gpulab/users/{user}/saves/{name_seg(rng)}"
            obj = value(rng)
        body, headers = json_body(rng, obj) if m not in SAFE else (None, {})
        out.append(Case(m, path, "alice", query(rng), headers, body))
    return out


SPAWN_FIELDS = ["profile", "gpus", "gpu_ids", "save"]
SPAWN_POISONS = [
    (
        "profile",
        lambda rng: rng.choice(["nope", "", ["gpu"], {"a": 1}, 1, None, True, text(rng) + "!"]),
    ),
    (
        "gpus",
        lambda rng: rng.choice(
            [-1, 2, 3, 1025, 10**40, "x", "1.5", 1.5, True, [1], {"a": 1}, "٣", "9" * 5000]
        ),
    ),
    (
        "gpu_ids",
        lambda rng: rng.choice(
            ["7", "0,0", [99], [[1]], [{"a": 1}], [True], "x" * 300, 5, list(range(65))]
        ),
    ),
    ("save", lambda rng: rng.choice(["nope", ["x"], {"a": 1}, 5, text(rng) + "!"])),
    ("node", lambda rng: value(rng)),
    ("image", "localhost/evil:latest"),
    ("bogus", lambda rng: value(rng)),
]


def spawn_body(rng):
    """A spawn request's body that can never be a valid spawn.

    Never an empty body, nor one JSON calls false ([], "", 0, false, null, {}): JupyterHub 6 reads
    any of them as "no options" (``get_server_json_body``) and starts the server with the
    defaults, as it should an empty request."""
    pick = rng.random()
    if pick < 0.65:
        obj = poisoned(rng, SPAWN_FIELDS, SPAWN_POISONS)
        wrap = rng.random()
        if wrap < 0.15:  # JupyterHub 6's own schema: the options under user_options
            obj = {"user_options": obj}
        elif wrap < 0.25:
            obj = {"display_name": text(rng), "user_options": obj}
        elif wrap < 0.3:
            obj = {"display_name": value(rng) or 5, "user_options": rng.choice([[1], "x", 5, True])}
        body = dumps(obj)
    elif pick < 0.8:
        body = dumps(rng.choice([[1], "x", 1, True, text(rng) or "x", [value(rng)]]))
    elif pick < 0.97:
        body = rng.choice(
            [
                b"{",
                b"[1,",
                b"NaN",
                b"\xff",
                b'{"a":' * 2000 + b"1" + b"}" * 2000,
                b"[" * 100000,
                b"1" * 5000,
            ]
        )
    else:
        body = huge(rng)
        if body.startswith(b"[") and body.endswith(b"]"):
            body = body[:-1]  # an array is refused too; this one is truncated as well
    return body


def fam_spawn_api(rng, n, real):
    out = []
    for _ in range(n):
        user = user_seg(rng) if rng.random() < 0.4 else "alice"
        if rng.random() < 0.9:
            path = f"/hub/api/users/{user}/server"
        else:
            path = f"/hub/api/users/{user}/servers/{name_seg(rng)}"
        # (not PATCH or DELETE: JupyterHub 6's own handlers for renaming and stopping a server
        # answer a JSON body that is not an object, or a rename with other fields, with 500;
        # that is JupyterHub's code, not gpulab's)
        m = "POST" if rng.random() < 0.9 else rng.choice(["PUT", "GET"])
        body = spawn_body(rng) if m != "GET" else None
        ctype = "application/json" if rng.random() < 0.7 else rng.choice(CONTENT_TYPES)
        out.append(
            Case(m, path, "alice", query(rng), {"Content-Type": ctype} if ctype else {}, body)
        )
    return out


FORM_POISONS = [
    ("profile", lambda rng: rng.choice(["nope", "GPU", "gpu ", text(rng) + "!"])),
    ("gpus", lambda rng: rng.choice(["-1", "2", "1025", "x", "1.5", "٣", "9" * 5000, " ", "0x1"])),
    ("gpu_ids", lambda rng: rng.choice(["7", "0,0", "x" * 300, ",".join(map(str, range(65)))])),
    ("save", lambda rng: text(rng) + "!"),
    ("node", lambda rng: text(rng) or "x"),
    ("image", "localhost/evil:latest"),
    ("bogus", lambda rng: text(rng)),
    (lambda rng: (text(rng)[:40] or "k") + "_", lambda rng: text(rng)),
]


def fam_spawn_form(rng, n, real):
    out = []
    for _ in range(n):
        user = user_seg(rng) if rng.random() < 0.3 else "alice"
        fields = [(k, str(value(rng))[:500]) for k in rng.sample(SPAWN_FIELDS, rng.randint(0, 4))]
        for _ in range(rng.randint(1, 2)):
            k, v = rng.choice(FORM_POISONS)
            fields.append((k(rng) if callable(k) else k, v(rng) if callable(v) else v))
        rng.shuffle(fields)  # the first value of a field is the one read
        # a poisoned field first, so the one read is never a valid one
        poison = next(f for f in fields if f[0] not in SPAWN_FIELDS or f[1] not in ("gpu", "cpu"))
        fields.remove(poison)
        fields.insert(0, poison)
        if rng.random() < 0.5:
            body = urlencode(fields, errors="surrogatepass").encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            boundary = "gpulabfuzz" + str(rng.randint(0, 10**9))
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{seg(k)}"\r\n\r\n{v}\r\n'
                for k, v in fields
            ]
            body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        m = "POST" if rng.random() < 0.92 else rng.choice(["PUT", "PATCH", "GET"])
        if m == "GET":  # options in the page's query: refused (a link never starts a server)
            body, headers = None, {}
            # (within the proxy's 16 KiB for a request's head: past it the proxy answers 431, and
            # far past it resets the connection while the client still sends)
            fields = [(k[:100], v[:2000]) for k, v in fields if k != "_xsrf"]
            out.append(Case(m, f"/hub/spawn/{user}", "cookie", fields, headers, body))
            continue
        out.append(Case(m, f"/hub/spawn/{user}", "cookie", query(rng)[:2], headers, body))
    return out


#: a spawn, even refused, costs the hub some 50 ms (JupyterHub makes the server's OAuth client and
#: token, then DockerSpawner looks for its container): fewer of them keep the test near 2 minutes
SHARE = {"spawn-api": float(os.environ.get("GPULAB_FUZZ_SPAWN_SHARE", "0.3"))}
SHARE["spawn-form"] = SHARE["spawn-api"]

FAMILIES = {
    "version": fam_version,
    "gpus": fam_gpus,
    "readings": fam_readings,
    "ssh": fam_ssh,
    "home-backups": fam_home_backups,
    "jobs": fam_jobs,
    "keep": fam_keep,
    "notices": fam_notices,
    "saves": fam_saves,
    "spawn-api": fam_spawn_api,
    "spawn-form": fam_spawn_form,
}


# --- running them ---


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def login(hub, name):
    """A browser's login (the spawn form takes no token): its cookies and its XSRF token."""
    s = requests.Session()
    s.get(hub.url + "/hub/login", timeout=30)
    r = s.post(
        hub.url + "/hub/login",
        data={"username": name, "password": hub.password, "_xsrf": s.cookies.get("_xsrf")},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.text
    assert s.get(hub.url + "/hub/home", timeout=30).status_code == 200
    return s.cookies, s.cookies.get("_xsrf")


class Fuzzer:
    def __init__(self, hub, tokens, cookies):
        self.hub, self.tokens, (self.jar, self.xsrf) = hub, tokens, cookies
        self.local = threading.local()
        self.spawns = threading.Lock()

    def session(self, cookie):
        """This thread's session: with the browser's cookies (``cookie``) or without."""
        which = "c" if cookie else "s"
        if not hasattr(self.local, which):
            s = requests.Session()
            if cookie:
                s.cookies.update(self.jar)
            setattr(self.local, which, s)
        return getattr(self.local, which)

    def send(self, family, case):
        if family.startswith("spawn"):
            # one spawn of alice's at a time: while one is pending, JupyterHub answers another
            # with 202 ("already pending"), which would hide what the second one was answered
            with self.spawns:
                out = self._send(family, case)
                if out[2] == 302 and "/spawn-pending/" in out[3]:
                    out = (*out[:2], self._late(), *out[3:])
                return out
        return self._send(family, case)

    def _late(self):
        """JupyterHub's spawn form waits 1 s for the spawn, then sends the browser to the pending
        page (a hub slowed down, e.g. by its disk, validates later): the spawn must then fail."""
        url = "/users/alice"
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            server = self.hub.api("GET", url, token=self.tokens["admin"]).json()["servers"].get("")
            if not server:
                return REFUSED_LATE
            if server.get("ready"):
                return "spawned"
            time.sleep(0.1)
        return "hang"

    def _send(self, family, case):
        headers = dict(case.headers)
        cookie = case.token == "cookie"
        if cookie:
            headers["X-XSRFToken"] = self.xsrf
        elif case.token != "none":
            headers["Authorization"] = f"token {self.tokens[case.token]}"
        url = self.hub.url + case.path
        t0 = time.monotonic()
        try:
            r = self.session(cookie).request(
                case.method,
                url,
                params=[
                    tuple(x.encode("utf-8", "surrogatepass") for x in kv) for kv in case.params
                ],
                headers=headers,
                data=case.body,
                timeout=TIMEOUT,
                allow_redirects=False,
            )
            status, detail = r.status_code, r.headers.get("Location") or r.text[:300]
        except requests.Timeout:
            status, detail = "hang", f"no answer in {TIMEOUT} s"
        except requests.RequestException as e:
            self.local.__dict__.pop("c" if cookie else "s", None)
            status, detail = "dropped", f"{type(e).__name__}: {str(e)[:200]}"
        return family, case, status, detail, time.monotonic() - t0

    def run(self, cases):
        """Every (family, case); returns {family: Counter of statuses} and the bad answers."""
        counts = collections.defaultdict(collections.Counter)
        self.took = collections.Counter()  # seconds per family (all requests together)
        bad = []
        with ThreadPoolExecutor(WORKERS) as pool:
            for family, case, status, detail, took in pool.map(lambda fc: self.send(*fc), cases):
                counts[family][status] += 1
                self.took[family] += took
                wrong = status != REFUSED_LATE and (
                    not isinstance(status, int)
                    or status >= 500
                    or (status < 400 and case.method not in SAFE)  # done, or redirected on
                )
                if wrong:
                    bad.append(
                        (
                            family,
                            case.method,
                            case.path[:160],
                            [(k[:40], v[:40]) for k, v in case.params[:4]],
                            case.body[:160] if case.body else None,
                            status,
                            detail,
                            round(took, 1),
                        )
                    )
        return counts, bad


def regressions(real):
    """What answered 500 once, sent in every round whatever the seed draws."""
    job = real["jobs"][0]
    reading = {"uuid": GPUS[0]["uuid"], "utilization": 1, "memory_used": 1, "memory_total": 1}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    as_json = {"Content-Type": "application/json"}
    jobs = "/hub/api/gpulab/users/alice/jobs"
    return [
        # a lone surrogate (valid JSON) in a command or notebook: UnicodeEncodeError
        ("jobs", Case("POST", jobs, body=dumps({"command": ["\ud800"]}), headers=as_json)),
        ("jobs", Case("POST", jobs, body=dumps({"command": "echo \udfff"}), headers=as_json)),
        ("jobs", Case("POST", jobs, body=dumps({"notebook": "a\ud800.ipynb"}), headers=as_json)),
        # a POST to a job's log: JobsAPIHandler.post with the wrong arguments
        ("jobs", Case("POST", f"{jobs}/{job}/log", body=b"{}", headers=as_json)),
        # readings with a uuid that is not a string, a number past any int, a GPU not an object
        *[
            (
                "readings",
                Case("POST", "/hub/api/gpulab/readings", "admin", body=dumps(b), headers=as_json),
            )
            for b in (
                {"node": "", "gpus": [{**reading, "uuid": [1]}]},
                {"node": "", "gpus": [{**reading, "uuid": {"a": 1}}]},
                {"node": "", "gpus": [{**reading, "memory_used": float("inf")}]},
                {"node": "", "gpus": [{**reading, "processes": [{"pid": float("inf")}]}]},
                {"node": "", "gpus": ["x", 1]},
                {"node": "", "gpus": [{**reading, "node": ["n1"]}]},
            )
        ],
        # an 8 MiB array to "keep" (parsed whole before: now refused by its size, as elsewhere)
        (
            "keep",
            Case(
                "POST",
                "/hub/api/gpulab/users/alice/keep",
                body=b"[" + b"0," * (4 << 20) + b"0]",
                headers=as_json,
            ),
        ),
        # JSON nested too deep to parse: RecursionError
        ("ssh", Case("POST", "/hub/api/gpulab/ssh/keys", body=b"[" * 100000, headers=as_json)),
        ("ssh", Case("POST", "/hub/api/gpulab/ssh/keys", body=b'{"key":' * 5000, headers=as_json)),
        # the spawn form's fields and the spawn page's query, not UTF-8: JupyterHub's 500
        (
            "spawn-form",
            Case("POST", "/hub/spawn/alice", "cookie", body=b"profile=%ED%A0%80", headers=form),
        ),
        (
            "spawn-form",
            Case("POST", "/hub/spawn/alice", "cookie", body=b"gpus=1&x=%ff", headers=form),
        ),
        ("spawn-form", Case("GET", "/hub/spawn/alice", "cookie", params=[("gpus", "\udcff")])),
    ]


def cases_for(round_name, n, real):
    out = list(regressions(real))
    for family, make in FAMILIES.items():
        rng = random.Random(f"{SEED}-{round_name}-{family}")
        out.extend((family, c) for c in make(rng, round(n * SHARE.get(family, 1)), real))
    random.Random(f"{SEED}-{round_name}").shuffle(out)
    return out


# --- what must not change ---


def valid_key():
    blob = b"".join(struct.pack(">I", len(p)) + p for p in (b"ssh-ed25519", bytes(range(32))))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} alice@laptop"


def snapshot(hub, tokens, backups_dir):
    """Everything the fuzzing must leave as it was."""

    def get(path, who="alice"):
        r = hub.api("GET", path, token=tokens[who])
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        return r.json()

    users = {
        u["name"]: (u["admin"], sorted(u.get("servers") or {}), u.get("pending"))
        for u in hub.api("GET", "/users").json()
    }
    gpus = get("/gpulab/gpus", "admin")
    files = sorted(
        os.path.relpath(os.path.join(d, f), backups_dir)
        for d, _, fs in os.walk(backups_dir)
        for f in fs
    )
    return {
        "users": users,
        "alice tokens": sorted(t["id"] for t in get("/users/alice/tokens")["api_tokens"]),
        "keys": get("/gpulab/ssh/keys"),
        "jobs": [(j["id"], j["state"]) for j in get("/gpulab/users/alice/jobs")],
        "bob jobs": [(j["id"], j["state"]) for j in get("/gpulab/users/bob/jobs", "bob")],
        "archives": get("/gpulab/users/alice/home-backups")["archives"],
        "saves": get("/gpulab/users/alice/saves"),
        "holders": [g["holders"] for g in gpus["gpus"]],
        "queue": gpus["queue"],
        "containers": sorted(c.name for c in hub.containers()),
        "volumes": sorted(v.name for v in hub.volumes()),
        "images": sorted(
            i.id for i in hub.client.images.list(filters={"label": f"gpulab.deployment={hub.name}"})
        ),
        "backup files": files,
    }


@pytest.fixture(scope="module")
def lab(make_hub, tmp_path_factory):
    backups = tmp_path_factory.mktemp("nas")
    hub = make_hub(SITE, start=False)
    hub.site["storage"]["backups"] = str(backups)  # with the harness's datasets
    hub.start()
    for name in ("alice", "bob", "admin"):
        hub.create_user(name)
    tokens = {name: hub.user_token(name) for name in ("alice", "bob", "admin")}
    return hub, tokens, str(backups)


def test_a_thousand_bad_requests_per_endpoint_get_4xx_and_change_nothing(lab):
    hub, tokens, backups = lab
    t_start = time.monotonic()
    # what there is to lose: an SSH key, a finished job, a home backup of alice's
    r = hub.api("POST", "/gpulab/ssh/keys", token=tokens["alice"], json={"key": valid_key()})
    assert r.status_code == 201, r.text
    r = hub.api(
        "POST",
        "/gpulab/users/alice/jobs",
        token=tokens["alice"],
        json={"command": ["true"], "profile": "gpu"},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 90
    final = ("succeeded", "failed", "cancelled", "timed-out")
    job_url = f"/gpulab/users/alice/jobs/{job_id}"
    while hub.api("GET", job_url, token=tokens["alice"]).json()["state"] not in final:
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.3)
    db = sqlite3.connect(f"file:{hub.site['hub']['state_dir']}/gpulab.sqlite?mode=ro", uri=True)
    (alice_id,) = db.execute("SELECT id FROM users WHERE name = 'alice'").fetchone()
    db.close()
    folder = os.path.join(backups, f"{alice_id}-alice")
    os.makedirs(folder, mode=0o700)
    archive = time.strftime("home-%Y%m%d-%H%M%S.tar.gz", time.gmtime())
    with open(os.path.join(folder, archive), "wb") as f:
        f.write(b"\x1f\x8b" + os.urandom(1000))
    real = {"jobs": [job_id], "archives": [archive]}
    before = snapshot(hub, tokens, backups)
    assert len(before["keys"]) == 1 and len(before["archives"]) == 1, before

    fuzzer = Fuzzer(hub, tokens, login(hub, "alice"))
    pid = hub.proc.pid
    _, bad = fuzzer.run(cases_for("warm-up", WARM_UP, real))
    rss_before = rss_kib(pid)
    t0 = time.monotonic()
    counts, more_bad = fuzzer.run(cases_for("main", PER_FAMILY, real))
    took = time.monotonic() - t0
    rss_after = rss_kib(pid)
    bad += more_bad

    for family, counter in counts.items():
        shown = ", ".join(
            f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))
        )
        n = sum(counter.values())
        mean = 1000 * fuzzer.took[family] / n
        print(f"\n[gpulab] fuzz {family}: {n} requests, {mean:.0f} ms each ({shown})", end="")
    total = sum(sum(c.values()) for c in counts.values())
    print(
        f"\n[gpulab] fuzz: {total} requests in {took:.1f} s (seed {SEED}); hub RSS "
        f"{rss_before / 1024:.1f} MiB after the warm-up, {rss_after / 1024:.1f} MiB after "
        f"(+{(rss_after - rss_before) / 1024:.1f} MiB); whole test {time.monotonic() - t_start:.0f} s"
    )
    assert not bad, (
        f"{len(bad)} bad answers, e.g.:\n"
        + "\n".join(map(repr, bad[:15]))
        + "\n"
        + hub.log_tail(80)
    )
    # the garbage reached gpulab's checks (not only JupyterHub's or the proxy's)
    for family in ("readings", "ssh", "jobs", "spawn-api", "spawn-form"):
        assert counts[family][400] > PER_FAMILY * SHARE.get(family, 1) // 5, (
            family,
            counts[family],
        )
    # nothing created or lost, and the hub still answers at once
    after = snapshot(hub, tokens, backups)
    assert after == before
    assert requests.get(hub.url + "/hub/api/", timeout=5).status_code == 200
    assert (rss_after - rss_before) / 1024 < MAX_GROWTH_MIB, (rss_before, rss_after)
