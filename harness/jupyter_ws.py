"""Talk to a user's Jupyter server through the hub proxy: kernels, terminals, websockets.

Plain REST + tornado websockets with an API token, the way JupyterLab does it.
"""

import asyncio
import json
import time
import uuid

import requests
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect


def _headers(token):
    return {"Authorization": f"token {token}"} if token else {}


def ws_status(url, token=None):
    """Open a websocket; return 101 on success or the HTTP status that refused it."""

    async def go():
        try:
            conn = await websocket_connect(
                HTTPRequest("ws" + url[4:], headers=_headers(token), follow_redirects=False)
            )
        except HTTPClientError as e:
            return e.code
        conn.close()
        return 101

    return asyncio.run(go())


def ws_echo(url, token, message):
    async def go():
        conn = await websocket_connect(HTTPRequest("ws" + url[4:], headers=_headers(token)))
        await conn.write_message(message)
        reply = await asyncio.wait_for(conn.read_message(), 20)
        conn.close()
        return reply

    return asyncio.run(go())


def kernel_run(server_url, token, code, timeout=90, while_alive=None):
    """Start a kernel, run ``code``, return (stdout, [html displays]); the kernel is deleted
    after ``while_alive(stdout, htmls)`` (if given) returns: its child processes live until then."""
    r = requests.post(
        server_url + "api/kernels", headers=_headers(token), json={"name": "python3"}, timeout=30
    )
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    try:
        out, html = asyncio.run(_execute(server_url, token, kernel_id, code, timeout))
        if while_alive:
            while_alive(out, html)
        return out, html
    finally:
        requests.delete(
            server_url + f"api/kernels/{kernel_id}", headers=_headers(token), timeout=30
        )


async def _execute(server_url, token, kernel_id, code, timeout):
    url = "ws" + server_url[4:] + f"api/kernels/{kernel_id}/channels"
    conn = await websocket_connect(HTTPRequest(url, headers=_headers(token)))
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "username": "test",
        "session": session,
        "msg_type": "execute_request",
        "version": "5.3",
    }
    content = {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    await conn.write_message(
        json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    out, html, deadline = [], [], time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), max(1, deadline - time.monotonic()))
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind in ("display_data", "update_display_data", "execute_result"):
                html.append(msg["content"]["data"].get("text/html", ""))
            elif kind == "error":
                raise AssertionError("kernel error: " + "\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out), html
    finally:
        conn.close()


def terminal_run(server_url, token, command, marker, timeout=60):
    """Run ``command`` in a new JupyterLab terminal; return its output up to ``marker``."""
    r = requests.post(server_url + "api/terminals", headers=_headers(token), timeout=30)
    assert r.status_code == 200, r.text
    name = r.json()["name"]

    async def go():
        conn = await websocket_connect(
            HTTPRequest(
                "ws" + server_url[4:] + f"terminals/websocket/{name}", headers=_headers(token)
            )
        )
        await conn.write_message(json.dumps(["stdin", command + "\r"]))
        text, deadline = "", time.monotonic() + timeout
        while marker not in text:
            raw = await asyncio.wait_for(conn.read_message(), max(1, deadline - time.monotonic()))
            assert raw is not None, "terminal websocket closed"
            kind, *rest = json.loads(raw)
            if kind == "stdout":
                text += rest[0]
        conn.close()
        return text

    try:
        return asyncio.run(go())
    finally:
        requests.delete(server_url + f"api/terminals/{name}", headers=_headers(token), timeout=30)
