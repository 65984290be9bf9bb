"""Server paths from the UI or the API: only uploads, the data dir and folders the operator allowed."""

from __future__ import annotations

import os

import pytest

from playground.fsutil import PathPolicy


def test_paths_inside_the_data_dir_uploads_or_allowed_folders_pass(tmp_path):
    data, uploads, shared, home = (tmp_path / n for n in ("data", "uploads", "shared", "home"))
    for d in (data, uploads, shared, home):
        d.mkdir()
    policy = PathPolicy.create(data, [shared])
    assert policy.check(data / "rows.jsonl", "dataset") == (data / "rows.jsonl").resolve()
    assert policy.check(str(shared / "a" / "b.csv"), "dataset") == (shared / "a" / "b.csv").resolve()
    assert policy.check(uploads / "x.zip", "upload", uploads=uploads) == (uploads / "x.zip").resolve()
    with pytest.raises(ValueError, match=r"^dataset: .*secret.json is outside the folders this server may read"):
        policy.check(home / "secret.json", "dataset")
    with pytest.raises(ValueError, match="--allow-path DIR"):
        policy.check(home / "x.zip", "upload")  # uploads are allowed only where the caller says they land


def test_dot_dot_and_links_cannot_lead_outside(tmp_path):
    data, home = tmp_path / "data", tmp_path / "home"
    data.mkdir(), home.mkdir()
    (home / "notes.csv").write_text("a\n1\n")
    os.symlink(home, data / "link")
    policy = PathPolicy.create(data)
    for sneaky in (data / ".." / "home" / "notes.csv", data / "link" / "notes.csv", tmp_path / "data-other"):
        with pytest.raises(ValueError, match="outside the folders"):
            policy.check(sneaky, "Folder path")
    with pytest.raises(ValueError, match="Folder path is empty"):
        policy.check("  ", "Folder path")


def test_app_flag_allows_folders(tmp_path):
    import app

    args = app.parse_args(["--allow-path", str(tmp_path / "a"), "--allow-path", str(tmp_path / "b")])
    assert args.allow_path == [tmp_path / "a", tmp_path / "b"]
    assert app.parse_args([]).allow_path == []
