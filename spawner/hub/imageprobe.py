"""The hub's knowledge of its images (:mod:`gpulab.core.imagefacts`): gpulab's probe run once per
image through the deployment's job door (as nobody, no network, read-only hooks, small limits, a
timeout), the answer kept by image. A probe that cannot run (an image not there yet, an engine
error) answers None: nothing is claimed, and the start says what went wrong."""

import asyncio
import collections
import hashlib

from ..core import contract
from ..core import imagefacts as facts
from ..core.job import JobError, build_job
from ..core.spec import MountSpec

PROBE = f"{contract.HOOK_DIR}/probe-image"
TIMEOUT = 120
KEEP = 256  # images remembered


class ImageProbe:
    def __init__(self, lab):
        self.lab = lab
        self.known = collections.OrderedDict()  # key -> ImageFacts
        self.pending = {}  # key -> the probe under way

    def cached(self, key):
        return self.known.get(key)

    async def facts(self, image, key=None, log=None):
        """The image's facts (``key``: what identifies its content, e.g. its id; the name if not given)."""
        key = key or image
        if key in self.known:
            self.known.move_to_end(key)
            return self.known[key]
        if key not in self.pending:
            self.pending[key] = asyncio.ensure_future(self._probe(image))
        task = self.pending[key]
        try:
            found = await asyncio.shield(task)
        except (JobError, facts.ProbeError, OSError) as e:
            if log:
                log.warning("gpulab: could not probe image %s: %s", image, e)
            return None
        finally:
            if task.done():
                self.pending.pop(key, None)
        self.known[key] = found
        while len(self.known) > KEEP:
            self.known.popitem(last=False)
        return found

    async def _probe(self, image):
        lab = self.lab
        if not lab.boot:
            raise JobError("the hub's boot files are not installed (no probe)")
        digest = hashlib.sha256(image.encode()).hexdigest()[:10]
        job = build_job(
            deployment=lab.name,
            name=f"{lab.name}-probe-{digest}"[:63],
            kind="probe",
            image=image,
            command=("/bin/sh", PROBE),
            hardening=lab.hardening,
            timeout=TIMEOUT,
            mounts=(
                MountSpec(
                    target=contract.HOOK_DIR,
                    source=f"{lab.boot}/hooks",
                    kind="bind",
                    read_only=True,
                ),
            ),
            user="65534:65534",
            mem_limit=256 * 1024**2,
            cpu_limit=0.5,
        )
        result = await lab.run_job(job)
        if not result.ok:
            raise JobError(
                f"the probe of {image} ended with status {result.status}: {result.output[-300:]}"
            )
        return facts.parse(result.output)
