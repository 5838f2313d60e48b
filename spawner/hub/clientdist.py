"""The laptop client as the hub serves it, made from the ``gpulab_client`` package installed with
the hub (so it is always the hub's own version): a wheel (``pip install <url>``, ``pipx install
<url>``) and a single-file zipapp (download, ``chmod +x``, run: no pip, nothing installed, fine on
systems that refuse ``pip install --user``). Both standard library only, made once, in memory."""

import base64
import hashlib
import io
import os
import zipfile

NAME = "gpulab_client"
#: every file is dated so: the same package gives the same bytes
EPOCH = (2020, 1, 1, 0, 0, 0)


def _sources():
    import gpulab_client

    root = os.path.dirname(os.path.abspath(gpulab_client.__file__))
    return gpulab_client.__version__, {
        f"{NAME}/{name}": open(os.path.join(root, name), "rb").read()
        for name in sorted(os.listdir(root))
        if name.endswith(".py")
    }


def _zip(files, prefix=b""):
    buf = io.BytesIO()
    buf.write(prefix)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


def wheel():
    """(file name, bytes) of ``gpulab_client-<version>-py3-none-any.whl`` (PEP 427)."""
    version, files = _sources()
    info = f"gpulab_client-{version}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = (
        "Metadata-Version: 2.1\nName: gpulab-client\n"
        f"Version: {version}\nSummary: gpulab on your own machine: SSH through the hub, "
        "the GPU table, saved environments\nRequires-Python: >=3.8\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: gpulab\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = (
        b"[console_scripts]\ngpulab-client = gpulab_client.cli:main\n"
    )

    def digest(data):
        raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"sha256={raw},{len(data)}"

    record = "".join(f"{name},{digest(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    return f"gpulab_client-{version}-py3-none-any.whl", _zip(files)


def zipapp():
    """(file name, bytes) of ``gpulab-client.pyz``: ``#!/usr/bin/env python3`` and the package."""
    _, files = _sources()
    files = {
        **files,
        "__main__.py": b"from gpulab_client.cli import main\nmain()\n",
    }
    return "gpulab-client.pyz", _zip(files, prefix=b"#!/usr/bin/env python3\n")


def version():
    import gpulab_client

    return gpulab_client.__version__
