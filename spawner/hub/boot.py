"""What every user container starts with, from the hub: ``gpulab-start``, the start hooks and the
hub's own ``gpulab-client``.

They run as root when a container starts, so they must not come from the container's image: a
saved environment (an image a user changed, maybe with sudo) could otherwise change what runs as
root at its next start, and a fix to a hook would never reach old saves. The hub copies them from
its own files (a checkout's ``images/`` and ``hooks/``, or an installed package's ``buildctx``)
into a root-owned boot directory, one folder per content (``<boot_dir>/<digest>``, so running
containers keep theirs while new starts get the new one), and every server mounts that folder
read-only over the image's copies (:data:`gpulab.core.contract.START_SCRIPT`,
:data:`gpulab.core.contract.HOOK_DIR`). On a Swarm the boot directory is on the shared storage.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

KEEP = 8  # boot folders kept (running containers may still mount the older ones)
SKIP = ("__pycache__", ".pyc", ".egg-info")


def find_build_context(package_dir=None):
    """``gpulab/buildctx`` of an installed package, else the checkout this module lives in.
    ``package_dir``: the ``gpulab`` package's folder (``spawner/`` in a checkout)."""
    package_dir = package_dir or Path(__file__).resolve().parent.parent
    packaged = package_dir / "buildctx"
    if (packaged / "images").is_dir():
        return packaged
    checkout = package_dir.parent
    if (checkout / "images").is_dir() and (checkout / "hooks").is_dir():
        return checkout
    raise FileNotFoundError(
        f"no image build context: neither {packaged} nor {checkout} holds images/ and hooks/"
    )


def _files(context):
    """[(path in the boot folder, source path)] of the start script and the hooks."""
    out = [("gpulab-start", Path(context) / "images" / "base" / "gpulab-start")]
    hooks = Path(context) / "hooks"
    for root, dirs, files in os.walk(hooks):
        dirs[:] = sorted(d for d in dirs if not d.endswith(SKIP))
        for name in sorted(files):
            if not name.endswith(SKIP):
                src = Path(root) / name
                out.append((str(Path("hooks") / src.relative_to(hooks)), src))
    # the hub's own client (standard library only), for `gpulab-client` in a user's terminal
    # (hooks/bin/gpulab-client, linked onto PATH by the start hook 15-client.sh)
    import gpulab_client

    client = Path(gpulab_client.__file__).resolve().parent
    for src in sorted(client.glob("*.py")):
        out.append((str(Path("hooks") / "client" / "gpulab_client" / src.name), src))
    return out


def digest(files):
    h = hashlib.sha256()
    for rel, src in files:
        h.update(
            rel.encode()
            + b"\0"
            + oct(src.stat().st_mode & 0o111).encode()
            + b"\0"
            + src.read_bytes()
            + b"\0"
        )
    return h.hexdigest()[:16]


def install(boot_dir, context=None):
    """Copy the boot files into ``<boot_dir>/<digest>`` (root-owned, not writable by anyone else)
    unless that folder exists; prune old folders. Returns the folder. Idempotent."""
    files = _files(context or find_build_context())
    target = os.path.join(boot_dir, digest(files))
    if os.path.isdir(target):
        return target
    os.makedirs(boot_dir, mode=0o755, exist_ok=True)
    os.chmod(boot_dir, 0o755)
    tmp = tempfile.mkdtemp(prefix=".new-", dir=boot_dir)
    try:
        for rel, src in files:
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755 if src.stat().st_mode & 0o111 else 0o644)
        for root, dirs, _ in os.walk(tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(boot_dir, keep=target)
    return target


def _prune(boot_dir, keep):
    folders = [
        os.path.join(boot_dir, n)
        for n in os.listdir(boot_dir)
        if not n.startswith(".") and os.path.isdir(os.path.join(boot_dir, n))
    ]
    folders.sort(key=os.path.getmtime, reverse=True)
    for old in folders[KEEP:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
