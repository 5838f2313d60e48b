"""A save, on the GPU node that runs the user's server: commit the container without the hub's
environment, push it to the lab's registry, print one JSON line for the hub. It runs as a job of
the hub image with that node's Docker socket, started by the Swarm backend's saves
(:class:`gpulab.backends.swarm.saves.SwarmSaves` through ``run_job``).

    GPULAB_SAVE_JOB='{"container": ..., "repository": ..., "tag": ..., "labels": {...}, "max_new_bytes": ...}'
"""

import json
import os
import sys

import docker

from ..core import contract
from ..core import saves as rules
from ..core.saves import SaveError


def main():
    job = json.loads(os.environ[contract.SAVE_JOB_ENV])
    client = docker.from_env(version="auto", timeout=600)
    try:
        container = client.containers.get(job["container"])
        _, own = rules.commit(
            client,
            container,
            repository=job["repository"],
            tag=job["tag"],
            labels=job["labels"],
            max_new_bytes=job["max_new_bytes"],
        )
        for line in client.api.push(job["repository"], tag=job["tag"], stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"push to the registry failed: {line['error']}")
        print(
            json.dumps(
                {"gpulab_save": "ok", "image": f"{job['repository']}:{job['tag']}", "bytes": own}
            ),
            flush=True,
        )
    except SaveError as e:
        print(json.dumps({"gpulab_save": "refused", "message": str(e)}), flush=True)
        sys.exit(1)
    except Exception as e:
        print(
            json.dumps({"gpulab_save": "failed", "message": f"{type(e).__name__}: {e}"[:500]}),
            flush=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
