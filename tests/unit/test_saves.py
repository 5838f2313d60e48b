"""The rules of saved environments (gpulab.core.saves), without Docker: what a save may not
change, how its size is counted, and the hub's environment left out."""

import io
import tarfile

import pytest

from gpulab.core import saves


def changed(*paths, kind=0):
    return [{"Path": p, "Kind": kind} for p in paths]


def test_what_runs_as_root_is_found_and_what_does_not_is_not():
    diff = changed("/etc/sudoers.d/me", "/usr/sbin/usermod", "/opt/conda/bin/python", "/home/x")
    diff += changed("/usr/lib/python3.11/os.py", "/usr/lib/python3/dist-packages/numpy")
    diff += changed("/usr/local/sbin/getent", "/usr/bin/python3.11", "/usr/lib/python311.zip")
    diff += changed("/usr/local/bin/jupyter-lab", "/usr/local/lib/python3.11/dist-packages/x")
    assert saves.root_run_changes(diff) == [
        "/etc/sudoers.d/me",
        "/usr/sbin/usermod",
        "/usr/lib/python3.11/os.py",
        "/usr/local/sbin/getent",  # before /usr/sbin on the image's PATH
        "/usr/bin/python3.11",
        "/usr/lib/python311.zip",
    ]


def test_mounts_are_not_in_a_save_and_a_safe_parent_directory_is_not_a_change():
    diff = changed("/etc/ssh", "/etc/ssh/sshd_config.d", "/etc/pam.d")
    diff += changed("/etc/ssh/sshd_config.d/00-gpulab-runtime.conf", kind=1)
    mounts = ["/etc/ssh/sshd_config.d", "/etc/sudoers.d"]
    # /etc/ssh is root's and closed: only changed because the mount point below it was made
    assert saves.root_run_changes(diff, mounts, safe_dir=lambda p: True) == []
    # a directory opened to the user (chmod, chown) counts: what is written there later runs as root
    assert saves.root_run_changes(diff, mounts, safe_dir=lambda p: p != "/etc/pam.d") == [
        "/etc/pam.d"
    ]
    with pytest.raises(saves.SaveError, match="runs as root.*/etc/pam.d"):
        saves.check_changes(diff, mounts, safe_dir=lambda p: p != "/etc/pam.d")


class FakeAPI:
    """get_archive as Docker answers it: a tar stream in chunks, the first entry the path itself."""

    def __init__(self, uid, mode, kind=tarfile.DIRTYPE):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("pam.d")
            info.type, info.uid, info.mode = kind, uid, mode
            tar.addfile(info)
            for i in range(50):
                data = b"x" * 1000
                f = tarfile.TarInfo(f"pam.d/f{i}")
                f.size = len(data)
                tar.addfile(f, io.BytesIO(data))
        self.data, self.read = buf.getvalue(), 0
        self.closed = False

    def get_archive(self, cid, path, chunk_size):
        api = self

        def chunks():
            try:
                for i in range(0, len(api.data), 100):
                    api.read += 100
                    yield api.data[i : i + 100]
            finally:
                api.closed = True

        return chunks(), {}


@pytest.mark.parametrize(
    "uid,mode,kind,safe",
    [
        (0, 0o755, tarfile.DIRTYPE, True),
        (0, 0o775, tarfile.DIRTYPE, False),
        (0, 0o757, tarfile.DIRTYPE, False),
        (1000, 0o755, tarfile.DIRTYPE, False),
        (0, 0o755, tarfile.SYMTYPE, False),
    ],
)
def test_a_directory_is_safe_only_when_roots_and_closed(uid, mode, kind, safe):
    api = FakeAPI(uid, mode, kind)
    client = type("C", (), {"api": api})()
    container = type("K", (), {"id": "c1"})()
    assert saves.root_owned_dir(client, container, "/etc/pam.d") is safe
    # only the first tar record is read (not the whole directory), and the stream is closed
    assert api.read <= 2 * tarfile.RECORDSIZE < len(api.data) and api.closed


def test_size_counts_every_layer_above_the_profiles_image():
    base = [{"Created": 1, "CreatedBy": "base", "Size": 100}]
    older_save = [{"Created": 2, "CreatedBy": "commit", "Size": 40}] + base
    this = [{"Created": 3, "CreatedBy": "commit", "Size": 5}] + older_save
    assert saves.bytes_above(this, base) == 45
    assert saves.bytes_above(base, base) == 0


def test_the_hubs_environment_is_named_empty_in_the_image():
    conf = saves.commit_config(
        {"Env": ["PATH=/usr/bin"], "Cmd": ["start"], "Labels": {"a": "1"}},
        ["PATH=/usr/bin", "JUPYTERHUB_API_TOKEN=secret", "GPULAB_SSH=1"],
        {"gpulab.save": "1"},
        45,
    )
    assert conf["Env"] == ["PATH=/usr/bin", "JUPYTERHUB_API_TOKEN=", "GPULAB_SSH="]
    assert "secret" not in repr(conf)
    assert conf["Labels"]["gpulab.save"] == "1" and conf["Labels"]["a"] == "1"


def test_a_save_remembers_sudo_and_passes_it_on():
    assert saves.made_with_sudo(["GPULAB_SUDO=1"], {}) is True
    assert saves.made_with_sudo(["GPULAB_SUDO=0"], {}) is False
    # started from a save that sudo made: whatever was changed then is still in the layers
    made = {"gpulab.save": "1", "gpulab.save.sudo": "1"}
    assert saves.made_with_sudo(["GPULAB_SUDO=0"], made) is True
    assert saves.made_with_sudo(["GPULAB_SUDO=0"], {"gpulab.save": "1"}) is True  # unknown
    assert saves.made_with_sudo(["GPULAB_SUDO=0"], {**made, "gpulab.save.sudo": "0"}) is False
    assert saves.row_from_labels("r:t", {})["sudo"] is True
    assert saves.row_from_labels("r:t", {"gpulab.save.sudo": "0"})["sudo"] is False


def test_an_engine_out_of_disk_while_committing_is_a_507_that_says_so():
    from gpulab.core.saves import SaveError, disk_full_or

    e = disk_full_or(
        RuntimeError("500 Server Error: write /var/lib/docker/overlay2/x: no space left on device")
    )
    assert isinstance(e, SaveError) and e.status == 507
    assert "full" in str(e) and "nothing was saved" in str(e)
    other = RuntimeError("500 Server Error: something else")
    assert disk_full_or(other) is other
