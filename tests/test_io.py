"""model.io: atomic writes leave the old file or none, and ordinary permissions."""

import os
import stat

import pytest

from model import io


def test_atomic_write_permissions_match_open(tmp_path):
    ref = tmp_path / "plain.txt"
    ref.write_text("x")
    out = io.atomic_write_text(tmp_path / "atomic.txt", "y")
    assert out.read_text() == "y"
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(ref.stat().st_mode)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    io.atomic_write_json(target, {"a": 1})

    def boom(src, dst):
        raise OSError("disk full (test)")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        io.atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
