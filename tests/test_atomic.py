"""Atomic writes: whole files or none, with the permissions of an ordinary write."""

from __future__ import annotations

import os

import pytest

from mixma._atomic import atomic_open, atomic_path, write_text


def test_written_files_have_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        write_text(tmp_path / "atomic.txt", "x")
        with atomic_path(tmp_path / "by_name.jpg") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(mask)
    expected = plain.stat().st_mode & 0o777
    assert expected == 0o644
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "by_name.jpg").stat().st_mode & 0o777 == expected


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
