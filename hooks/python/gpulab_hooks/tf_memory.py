"""TensorFlow GPU memory growth, applied when (and only when) TensorFlow is imported.

``install()`` puts a tiny finder on ``sys.meta_path``. It does nothing until some code
imports ``tensorflow``; then it lets the real import run and calls
``tf.config.experimental.set_memory_growth(gpu, True)`` for each visible GPU, so one
notebook does not take a whole shared card. Kernel start imports only the standard
library. The hook is active when ``TF_FORCE_GPU_ALLOW_GROWTH`` is ``true`` (the
spawner's default; the site switch or a user's ``~/.config/gpulab/env`` turns it off).
"""

import importlib.abc
import importlib.util
import os
import sys

TARGET = "tensorflow"


def enabled(environ=os.environ):
    return environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "").strip().lower() == "true"


def apply_memory_growth(tf):
    """Turn on memory growth for every visible GPU; returns how many were set."""
    config = tf.config
    lister = (
        getattr(config, "list_physical_devices", None) or config.experimental.list_physical_devices
    )
    count = 0
    for gpu in lister("GPU"):
        try:
            config.experimental.set_memory_growth(gpu, True)
            count += 1
        except (RuntimeError, ValueError) as e:  # GPUs already initialised
            print(f"gpulab: memory growth not set for {gpu}: {e}", file=sys.stderr)
    return count


class _GrowthLoader(importlib.abc.Loader):
    """Wraps TensorFlow's own loader; runs apply_memory_growth after the module body."""

    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        try:
            apply_memory_growth(module)
        except Exception as e:  # never break the user's import
            print(f"gpulab: TensorFlow memory-growth hook failed: {e!r}", file=sys.stderr)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class TensorFlowImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; also avoids recursing below
        spec = importlib.util.find_spec(TARGET)
        if spec is None or spec.loader is None:
            sys.meta_path.insert(0, self)  # not installed (yet): keep waiting
            return None
        spec.loader = _GrowthLoader(spec.loader)
        return spec


def installed():
    return any(isinstance(f, TensorFlowImportHook) for f in sys.meta_path)


def install(environ=os.environ):
    """Arm the hook (idempotent). Returns True when armed."""
    if not enabled(environ):
        return False
    if TARGET in sys.modules:  # imported before us (unusual): apply now
        apply_memory_growth(sys.modules[TARGET])
        return True
    if not installed():
        sys.meta_path.insert(0, TensorFlowImportHook())
    return True


def load_ipython_extension(ipython):
    install()
