"""Saved environments on a Swarm: the server's container is committed on the node that runs it,
by a save job (:mod:`gpulab.agents.savejob`, the hub image with that node's Docker socket) run
through ``run_job``, and pushed to the lab's registry, so a save starts on any node. The hub keeps
the list (``<state_dir>/gpulab-saves.sqlite``), keyed by the hub's user id: the images live on the
nodes and in the registry, not where the hub runs. Deleting a save removes its tag from the
registry and its image from every node (a job on every node); the registry frees the layers at its
own garbage collection. The registry's credentials reach a job only as a Swarm secret."""

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from ...core import contract
from ...core import saves as rules
from ...core.job import EVERY_NODE, NODE_BRIDGE, build_job
from ...core.saves import SaveError
from ...core.spec import MountSpec
from . import cluster, registry
from .jobs import run_job

SAVE_TIMEOUT = 600
DOCKER_SOCKET = "/var/run/docker.sock"
CERTS = "/etc/docker/certs.d"  # the nodes' trust in the lab registry (its CA), for the jobs that call it
COLUMNS = ("user", "user_id", "tag", "image", "profile", "note", "created", "bytes", "sudo")


class SwarmSaves:
    def __init__(
        self,
        store_path,
        *,
        deployment,
        registry,
        hub_image,
        hardening,
        api_factory,
        registry_access=lambda: ("", None),
        pins=None,
    ):
        self.deployment = deployment
        self.registry = registry
        self.hub_image = hub_image
        self.hardening = hardening
        self.api_factory = api_factory
        # () -> (the Swarm secret with the registry's credentials, or ''; the credentials, or
        # None): known once the hub has prepared its host, after this is made
        self.registry_access = registry_access
        self.pins = {} if pins is None else pins  # the deployment's last pinned digests
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
            # a list from before saves were keyed by id, and knew whether sudo made them (not
            # known: as if it did)
            columns = [row[1] for row in db.execute("pragma table_info(saves)")]
            if "user_id" not in columns:
                db.execute("alter table saves add column user_id integer")
            if "sudo" not in columns:
                db.execute("alter table saves add column sudo integer not null default 1")
            self._db = db
        return self._db

    async def _io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _rows(self, user_id=None):
        sql = f"select {', '.join(COLUMNS)} from saves where deployment = ?"
        args = [self.deployment]
        if user_id is not None:
            sql += " and user_id = ?"
            args.append(user_id)
        rows = [
            dict(zip(COLUMNS, row, strict=True))
            for row in self.db.execute(sql + " order by created desc", args)
        ]
        return [{**r, "sudo": bool(r["sudo"])} for r in rows]

    async def list_saves(self, user_id=None):
        return await self._io(self._rows, user_id)

    async def find_save(self, user_id, tag):
        return next((r for r in await self.list_saves(user_id) if r["tag"] == tag), None)

    def _job(self, kind, name, order, node, escaped_user="", username=""):
        return build_job(
            deployment=self.deployment,
            name=name[:63].rstrip("-"),
            kind=kind,
            username=username,
            image=self.hub_image,
            command=["python3", "-m", "gpulab.agents.savejob"],
            env={contract.SAVE_JOB_ENV: json.dumps(order)},
            mounts=[
                MountSpec(target=DOCKER_SOCKET, source=DOCKER_SOCKET, kind="bind"),
                MountSpec(target=CERTS, source=CERTS, kind="bind", read_only=True),
            ],
            network=NODE_BRIDGE,  # the registry
            node=node,
            secrets=(self.registry_access()[0],) if self.registry_access()[0] else (),
            hardening=self.hardening,
            timeout=SAVE_TIMEOUT,
        )

    def _order(self, action, **kw):
        return {
            "action": action,
            "registry": self.registry,
            "secret": self.registry_access()[0],
            **kw,
        }

    async def create_save(
        self,
        *,
        username,
        user_id,
        escaped_user,
        service_name,
        profile,
        base_image,
        note,
        max_count,
        max_bytes,
        now=None,
    ):
        note = rules.check_note(note)
        existing = await self.list_saves(user_id)
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
        # a save ends in the registry: when it does not answer, nothing is made (no job, no commit)
        try:
            await self._io(registry.asked, api, self.hub_image, self.registry_access()[1])
        except registry.RegistryError as e:
            raise SaveError(f"{e}; nothing was saved: try again once it is back", 503)
        now = time.time() if now is None else now
        tag = rules.tag_for(now)
        order = self._order(
            "save",
            container=task["Status"]["ContainerStatus"]["ContainerID"],
            repository=rules.repository(
                f"{self.registry}/gpulab/saves", self.deployment, escaped_user
            ),
            tag=tag,
            labels=rules.save_labels(self.deployment, username, user_id, profile, note, now),
            max_new_bytes=max_bytes - used,
            base_image=base_image,
        )
        job = self._job(
            "save",
            f"{self.deployment}-save-{escaped_user}-{tag}",
            order,
            task["NodeID"],
            username=username,
        )
        outcome = _outcome(await run_job(api, job, auth=self.registry_access()[1], pins=self.pins))
        if outcome.get("gpulab_save") == "lost":  # the server's node died under the save
            raise SaveError(
                f"the save did not finish: {outcome['message']} (your server's node); it is not "
                "among your saves: save again once your server runs",
                503,
            )
        if outcome.get("status") == 507:  # the node's disk: say which
            node = await self._io(lambda: cluster.node_name(api.inspect_node(task["NodeID"])))
            outcome["message"] = outcome["message"].replace("this GPU server", node)
        if outcome.get("gpulab_save") != "ok":
            raise SaveError(
                f"{outcome.get('message', 'the save failed')} (your saves use {rules.gib(used)} of {rules.gib(max_bytes)})",
                outcome.get("status")
                or {"refused": 400, "registry": 502}.get(outcome.get("gpulab_save"), 500),
            )
        row = (
            self.deployment,
            username,
            tag,
            outcome["image"],
            profile,
            note,
            now,
            int(outcome["bytes"]),
            user_id,
            1 if outcome.get("sudo", True) else 0,
        )
        await self._io(
            self.db.execute,
            "insert into saves (deployment, user, tag, image, profile, note, created, bytes, user_id, sudo) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return await self.find_save(user_id, tag)

    async def delete_save(self, user_id, tag):
        row = await self.find_save(user_id, tag)
        if row is None:
            raise SaveError(f"no saved environment {tag!r}", 404)
        api = self.api_factory()
        in_use = [
            s["Spec"]["Name"]
            for s in await self._io(
                lambda: api.services(filters={"label": contract.deployment_filter(self.deployment)})
            )
            if (s["Spec"]["TaskTemplate"].get("ContainerSpec") or {}).get("Image", "").split("@")[0]
            == row["image"]
        ]
        if in_use:
            raise SaveError(
                f"{tag} is in use by a server ({', '.join(in_use)}): stop it first", 409
            )
        # the registry's tag, and the image on every node that pulled or made it
        job = self._job(
            "delete",
            f"{self.deployment}-unsave-{tag}-{row['user_id']}",
            self._order("delete", image=row["image"]),
            EVERY_NODE,
        )
        outcome = _outcome(await run_job(api, job, auth=self.registry_access()[1], pins=self.pins))
        if outcome.get("gpulab_save") != "ok":
            raise SaveError(
                f"{tag} could not be removed: {outcome.get('message', 'the job failed')}", 500
            )
        await self._io(
            self.db.execute,
            "delete from saves where deployment = ? and user_id = ? and tag = ?",
            (self.deployment, user_id, tag),
        )
        return row

    async def remove_user(self, user_id):
        """Every save of a deleted user (tags, images, rows); returns what was removed."""
        return [await self.delete_save(user_id, r["tag"]) for r in await self.list_saves(user_id)]


def _outcome(result):
    """A job's own JSON line (every node's, for a job on every node: the first failure wins)."""
    if result.lost:
        return {"gpulab_save": "lost", "message": result.lost}
    found = []
    for line in result.output.splitlines():
        start = line.find('{"gpulab_save"')
        if start >= 0:
            found.append(json.loads(line[start:]))
    failed = [o for o in found if o.get("gpulab_save") != "ok"]
    if failed:
        return failed[0]
    if found and result.ok:
        return found[0]
    if result.timed_out:
        return {"gpulab_save": "failed", "message": f"the job did not finish in {SAVE_TIMEOUT} s"}
    return {
        "gpulab_save": "failed",
        "message": f"the job ended with {result.status}: {result.output[-300:]}",
    }
