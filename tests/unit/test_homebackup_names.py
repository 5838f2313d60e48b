"""Backup archive names: a second backup within one second gets its own name, listed newest first."""

import types

import pytest

from gpulab.hub.homebackups import HomeBackupError, list_archives, new_archive_name


def test_backups_of_one_second_get_their_own_names_newest_first(tmp_path):
    lab = types.SimpleNamespace(home_backups_dir=str(tmp_path))
    folder = tmp_path / "7-sam"
    folder.mkdir()
    (folder / "home-20261201-235959.tar.gz").write_bytes(b"x")
    names = []
    for _ in range(3):
        name = new_archive_name(str(folder), "20261202-101010")
        (folder / name).write_bytes(b"yy")
        names.append(name)
    assert names == [
        "home-20261202-101010.tar.gz",
        "home-20261202-101010-2.tar.gz",
        "home-20261202-101010-3.tar.gz",
    ]
    listed = list_archives(lab, 7, "sam")
    assert [a["name"] for a in listed] == names[::-1] + ["home-20261201-235959.tar.gz"]
    assert {a["time"] for a in listed[:3]} == {"20261202-101010"}
    assert listed[0]["bytes"] == 2


def test_a_part_being_written_keeps_its_name_and_names_run_out_with_an_error(tmp_path):
    (tmp_path / ".home-20261202-101010.tar.gz.part").write_bytes(b"")
    assert new_archive_name(str(tmp_path), "20261202-101010") == "home-20261202-101010-2.tar.gz"
    for i in range(2, 1000):
        (tmp_path / f"home-20261202-101010-{i}.tar.gz").write_bytes(b"")
    with pytest.raises(HomeBackupError, match="this second"):
        new_archive_name(str(tmp_path), "20261202-101010")
