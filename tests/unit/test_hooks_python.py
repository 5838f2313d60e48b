"""The container-side package hooks/python (gpulab_hooks), run with this Python.

The TensorFlow hook is exercised in fresh interpreters with a stand-in ``tensorflow``
package that records its calls; the Docker tests run the same code in a real kernel.
"""

import json
import os
import subprocess
import sys
import textwrap

HOOKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "hooks", "python"
)
sys.path.insert(0, HOOKS)

from gpulab_hooks import serverproxy, tensorboard  # noqa: E402

FAKE_TF = """
import json, os
class _Experimental:
    @staticmethod
    def set_memory_growth(device, enable):
        with open(os.environ["FAKE_TF_LOG"], "a") as f:
            f.write(json.dumps([device, enable]) + "\\n")
class config:
    experimental = _Experimental
    @staticmethod
    def list_physical_devices(kind):
        return [f"/physical_device:{kind}:{i}" for i in range(int(os.environ.get("FAKE_TF_GPUS", "2")))]
"""


def run_python(tmp_path, code, **env):
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True, exist_ok=True)
    (fake / "tensorflow" / "__init__.py").write_text(FAKE_TF)
    log = tmp_path / "calls.jsonl"
    full_env = {k: v for k, v in os.environ.items() if k != "TF_FORCE_GPU_ALLOW_GROWTH"}
    full_env.update(PYTHONPATH=HOOKS, FAKE_TF_LOG=str(log), FAKE_DIR=str(fake), **env)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return out.stdout, calls


ARM_THEN_IMPORT = """
    import os, sys
    from gpulab_hooks import tf_memory
    armed = tf_memory.install()
    print("armed", armed, "tensorflow" in sys.modules)
    sys.path.insert(0, os.environ["FAKE_DIR"])   # placed on the path after start, like a pip install
    import tensorflow
    import tensorflow as again
    print("hook left", tf_memory.installed())
"""


def test_import_triggers_memory_growth_once_per_gpu(tmp_path):
    out, calls = run_python(
        tmp_path, ARM_THEN_IMPORT, TF_FORCE_GPU_ALLOW_GROWTH="true", FAKE_TF_GPUS="3"
    )
    assert "armed True False" in out
    assert calls == [[f"/physical_device:GPU:{i}", True] for i in range(3)]
    assert "hook left False" in out


def test_opt_out_means_no_hook(tmp_path):
    out, calls = run_python(tmp_path, ARM_THEN_IMPORT, TF_FORCE_GPU_ALLOW_GROWTH="false")
    assert "armed False False" in out and calls == []


def test_arming_imports_nothing_heavy(tmp_path):
    out, _ = run_python(
        tmp_path,
        """
        import sys
        before = set(sys.modules)
        from gpulab_hooks import tf_memory
        tf_memory.install()
        new = {m.split(".")[0] for m in set(sys.modules) - before} - {"gpulab_hooks"}
        print(sorted(new - set(sys.stdlib_module_names)), "tensorflow" in sys.modules)
    """,
        TF_FORCE_GPU_ALLOW_GROWTH="true",
    )
    assert out.strip() == "[] False", out  # only the standard library, never TensorFlow


def test_waits_when_tensorflow_is_missing_then_fires_after_install(tmp_path):
    out, calls = run_python(
        tmp_path,
        """
        import os, sys
        from gpulab_hooks import tf_memory
        tf_memory.install()
        try:
            import tensorflow
        except ImportError:
            print("missing")
        sys.path.insert(0, os.environ["FAKE_DIR"])
        import tensorflow
    """,
        TF_FORCE_GPU_ALLOW_GROWTH="true",
        FAKE_TF_GPUS="1",
    )
    assert "missing" in out and calls == [["/physical_device:GPU:0", True]]


def test_tensorboard_entry_point():
    server = serverproxy.tensorboard()
    assert server["command"][1:] == ["-m", "gpulab_hooks.tensorboard", "{port}"]
    assert server["absolute_url"] is False
    assert server["launcher_entry"]["title"] == "TensorBoard"
    assert os.path.isfile(server["launcher_entry"]["icon_path"])


def test_tensorboard_logdir_default_and_override():
    home = os.path.expanduser("~")
    assert tensorboard.logdir({}) == os.path.join(home, "runs")
    assert tensorboard.logdir({"GPULAB_TENSORBOARD_LOGDIR": "~/exp"}) == os.path.join(home, "exp")
    cmd = tensorboard.command("6006", {"GPULAB_TENSORBOARD_LOGDIR": "/scratch/tb"})
    assert "--logdir=/scratch/tb" in cmd and "--port=6006" in cmd and "--host=localhost" in cmd
