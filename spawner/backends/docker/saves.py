"""Saved environments on one host: images on this Docker engine, labelled with their owner's hub
user id (:mod:`gpulab.core.saves` has the rules and the commit). A save is one Docker API call in
the hub (``commit`` of the user's running container); no helper container runs. The Docker calls
run on a small executor of the saves' own, so a long commit never holds up spawns or the GPU table."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import docker

from ...core import contract
from ...core import saves as rules
from ...core.saves import SaveError


def _row(image):
    tags = [t for t in image.tags if t.startswith(contract.SAVES_REPOSITORY + "/")]
    return rules.row_from_labels(tags[0] if tags else image.id, image.labels)


def list_saves(client, deployment, user_id=None):
    """Saves of the deployment (of one user, by the hub's user id), newest first."""
    filters = [contract.deployment_filter(deployment), f"{contract.L_SAVE}=1"]
    if user_id is not None:
        filters.append(f"{contract.L_USER_ID}={user_id}")
    rows = [_row(image) for image in client.images.list(filters={"label": filters})]
    return sorted(rows, key=lambda r: r["created"], reverse=True)


class LocalSaves:
    """The saves of one deployment on this host (list, create, delete), as the hub's pages ask."""

    def __init__(self, deployment, client_factory):
        self.deployment = deployment
        self.client_factory = client_factory
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="gpulab-saves")

    async def _io(self, fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: fn(*args, **kw)
        )

    async def list_saves(self, user_id=None):
        return await self._io(lambda: list_saves(self.client_factory(), self.deployment, user_id))

    async def find_save(self, user_id, tag):
        return next((r for r in await self.list_saves(user_id) if r["tag"] == tag), None)

    async def create_save(self, **kw):
        return await self._io(self._create, **kw)

    async def delete_save(self, user_id, tag):
        return await self._io(self._delete, user_id, tag)

    async def remove_user(self, user_id):
        """Every save of a deleted user (its images); returns what was removed."""
        return [await self.delete_save(user_id, r["tag"]) for r in await self.list_saves(user_id)]

    def _create(
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
        """Commit the user's running container; returns the new save's row."""
        note = rules.check_note(note)
        client = self.client_factory()
        existing = list_saves(client, self.deployment, user_id)
        rules.check_count(existing, max_count)
        try:
            container = client.containers.get(service_name)
        except docker.errors.NotFound:
            raise SaveError(
                "your server is not running: start it, then save (a stopped server's changes outside the home are gone)",
                409,
            )
        container.reload()
        if container.status != "running" or container.labels.get(contract.L_USER) != username:
            raise SaveError("your server is not running: start it, then save", 409)
        used = sum(r["bytes"] for r in existing)
        now = time.time() if now is None else now
        try:
            image, _, _ = rules.commit(
                client,
                container,
                repository=rules.repository(
                    contract.SAVES_REPOSITORY, self.deployment, escaped_user
                ),
                tag=rules.tag_for(now),
                labels=rules.save_labels(self.deployment, username, user_id, profile, note, now),
                max_new_bytes=max_bytes - used,
                base_history=client.images.get(base_image).history(),
            )
        except SaveError as e:
            raise SaveError(f"{e} (your saves use {rules.gib(used)} of {rules.gib(max_bytes)})")
        return _row(client.images.get(image.id))

    def _delete(self, user_id, tag):
        client = self.client_factory()
        row = next(
            (r for r in list_saves(client, self.deployment, user_id) if r["tag"] == tag), None
        )
        if row is None:
            raise SaveError(f"no saved environment {tag!r}", 404)
        users = [
            c.name for c in client.containers.list(all=True, filters={"ancestor": row["image"]})
        ]
        if users:
            raise SaveError(f"{tag} is in use by a server ({', '.join(users)}): stop it first", 409)
        client.images.remove(row["image"])
        return row
