"""Saved environments on a Swarm: the server's container is committed on the node that runs it,
by a save job (:mod:`gpulab.agents.savejob`, the hub image with that node's Docker socket) run
through ``run_job``, and pushed to the lab's registry, so a save starts on any node. The hub keeps
the list (``<state_dir>/gpulab-saves.sqlite``): the images live on the nodes and in the registry,
not where the hub runs. Deleting a save forgets it; the registry keeps its layers until the
registry's own garbage collection."""

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from ...core import contract
from ...core import saves as rules
from ...core.job import NODE_BRIDGE, build_job
from ...core.saves import SaveError
from ...core.spec import MountSpec
from .jobs import run_job

SAVE_TIMEOUT = 600
DOCKER_SOCKET = "/var/run/docker.sock"


class SwarmSaves:
    def __init__(self, store_path, *, deployment, registry, hub_image, hardening, api_factory):
        self.deployment = deployment
        self.registry = registry
        self.hub_image = hub_image
        self.hardening = hardening
        self.api_factory = api_factory
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="gpulab-saves")
        self.store_path = store_path
        self._db = None

    @property
    def db(self):
        """The list, opened on first use (the state directory is made when the hub starts)."""
        if self._db is None:
            db = sqlite3.connect(self.store_path, isolation_level=None, check_same_thread=False)
            db.execute(
                "create table if not exists saves (deployment text, user text, tag text, image text, profile text, note text, "
                "created real, bytes integer, primary key (deployment, user, tag))"
            )
            self._db = db
        return self._db

    async def _io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _rows(self, username=None):
        sql = (
            "select user, tag, image, profile, note, created, bytes from saves where deployment = ?"
        )
        args = [self.deployment]
        if username is not None:
            sql += " and user = ?"
            args.append(username)
        rows = self.db.execute(sql + " order by created desc", args)
        return [
            {"user": u, "tag": t, "image": i, "profile": p, "note": n, "created": c, "bytes": b}
            for u, t, i, p, n, c, b in rows
        ]

    async def list_saves(self, username=None):
        return await self._io(self._rows, username)

    async def find_save(self, username, tag):
        return next((r for r in await self.list_saves(username) if r["tag"] == tag), None)

    async def create_save(
        self,
        *,
        username,
        escaped_user,
        service_name,
        profile,
        note="",
        max_count,
        max_bytes,
        now=None,
    ):
        note = rules.check_note(note)
        existing = await self.list_saves(username)
        rules.check_count(existing, max_count)
        used = sum(r["bytes"] for r in existing)
        api = self.api_factory()
        tasks = [
            t
            for t in await self._io(lambda: api.tasks(filters={"service": service_name}))
            if t["Status"]["State"] == "running"
        ]
        if not tasks:
            raise SaveError("your server is not running: start it, then save", 409)
        task = tasks[0]
        now = time.time() if now is None else now
        tag = rules.tag_for(now)
        order = {
            "container": task["Status"]["ContainerStatus"]["ContainerID"],
            "repository": rules.repository(
                f"{self.registry}/gpulab/saves", self.deployment, escaped_user
            ),
            "tag": tag,
            "labels": rules.save_labels(self.deployment, username, profile, note, now),
            "max_new_bytes": max_bytes - used,
        }
        job = build_job(
            deployment=self.deployment,
            name=f"{self.deployment}-save-{escaped_user}-{tag}"[:63].rstrip("-"),
            kind="save",
            username=username,
            image=self.hub_image,
            command=["python3", "-m", "gpulab.agents.savejob"],
            env={contract.SAVE_JOB_ENV: json.dumps(order)},
            mounts=[MountSpec(target=DOCKER_SOCKET, source=DOCKER_SOCKET, kind="bind")],
            network=NODE_BRIDGE,  # the registry
            node=task["NodeID"],
            hardening=self.hardening,
            timeout=SAVE_TIMEOUT,
        )
        result = await run_job(api, job)
        outcome = _outcome(result)
        if outcome.get("gpulab_save") != "ok":
            raise SaveError(
                f"{outcome.get('message', 'the save failed')} (your saves use {rules.gib(used)} of {rules.gib(max_bytes)})",
                400 if outcome.get("gpulab_save") == "refused" else 500,
            )
        await self._io(
            self.db.execute,
            "insert into saves values (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.deployment,
                username,
                tag,
                outcome["image"],
                profile,
                note,
                now,
                int(outcome["bytes"]),
            ),
        )
        return await self.find_save(username, tag)

    async def delete_save(self, username, tag):
        row = await self.find_save(username, tag)
        if row is None:
            raise SaveError(f"no saved environment {tag!r}", 404)
        await self._io(
            self.db.execute,
            "delete from saves where deployment = ? and user = ? and tag = ?",
            (self.deployment, username, tag),
        )
        return row


def _outcome(result):
    """The save job's own JSON line, or why there is none."""
    for line in result.output.splitlines():
        start = line.find('{"gpulab_save"')
        if start >= 0:
            return json.loads(line[start:])
    if result.timed_out:
        return {"gpulab_save": "failed", "message": f"the save did not finish in {SAVE_TIMEOUT} s"}
    return {
        "gpulab_save": "failed",
        "message": f"the save job ended with {result.status}: {result.output[-300:]}",
    }
