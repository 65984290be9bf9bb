"""Adapter .zip export and the careful import: round trip, and every hostile zip refused without a trace."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest
import torch
from test_adapters_fixtures import logits_of, manager  # noqa: F401

from playground.adapters.archive import export_zip, import_zip
from playground.adapters.library import AdapterError, AdapterLibrary


def _library_state(lib: AdapterLibrary) -> list[str]:
    """Every path under the library, hidden ones included (leftover temp folders would show here)."""
    return sorted(str(p.relative_to(lib.root)) for p in lib.root.rglob("*"))


def test_export_then_import_round_trip(manager, tmp_path):
    manager.activate("alpha")
    alpha = logits_of(manager.store)
    path = manager.export_zip("alpha", tmp_path / "out")
    assert path.name == "alpha.zip"
    with zipfile.ZipFile(path) as zf:
        assert {"alpha/adapter_config.json", "alpha/adapter_model.safetensors", "alpha/playground.json"} <= \
            set(zf.namelist())
    info = manager.import_zip(path)
    assert info.name == "alpha-2"  # never overwrites the existing one
    meta = json.loads((info.path / "playground.json").read_text())
    assert meta["name"] == "alpha-2" and meta["kind"] == "trained" and meta["run_id"] == "run-1"
    assert "imported_at" in meta
    manager.activate("alpha-2")
    assert torch.allclose(logits_of(manager.store), alpha, atol=1e-5)
    named = manager.import_zip(path, "from-zip")
    assert named.name == "from-zip"
    with pytest.raises(AdapterError, match="already exists"):
        manager.import_zip(path, "from-zip")


def test_zip_with_files_at_top_level_imports(manager, tmp_path):
    zpath = tmp_path / "flat adapter.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in manager.library.folder("beta").iterdir():
            zf.write(f, f.name)
    assert manager.import_zip(zpath).name == "flat-adapter"


def _hostile_zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("entry,message", [
    ("../evil.txt", "'..' path"),
    ("adapter/../../evil.txt", "'..' path"),
    ("/tmp/evil.txt", "absolute path"),
    ("..\\evil.txt", "'..' path"),
    ("C:/evil.txt", "absolute path"),
])
def test_zip_with_escaping_entries_is_refused(manager, tmp_path, entry, message):
    before = _library_state(manager.library)
    cfg = (manager.library.folder("alpha") / "adapter_config.json").read_bytes()
    zpath = _hostile_zip(tmp_path / "bad.zip", {"adapter_config.json": cfg, entry: b"pwned"})
    with pytest.raises(AdapterError, match=message):
        manager.import_zip(zpath)
    assert _library_state(manager.library) == before
    assert not (tmp_path / "evil.txt").exists() and not (manager.library.root.parent / "evil.txt").exists()


def test_zip_with_symlink_is_refused(manager, tmp_path):
    before = _library_state(manager.library)
    zpath = _hostile_zip(tmp_path / "link.zip", {"a/adapter_config.json": b"{}"}, symlink="a/adapter_model.safetensors")
    with pytest.raises(AdapterError, match="symbolic link"):
        manager.import_zip(zpath)
    assert _library_state(manager.library) == before


def test_zip_over_the_size_cap_is_refused(tmp_path):
    lib = AdapterLibrary(tmp_path / "adapters")
    zpath = tmp_path / "big.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/adapter_config.json", "{}")
        zf.writestr("a/adapter_model.safetensors", b"\0" * 5_000_000)  # compresses to a few KB
    assert zpath.stat().st_size < 100_000
    with pytest.raises(AdapterError, match="unpacks to more than"):
        import_zip(lib, zpath, max_bytes=1_000_000)
    assert _library_state(lib) == []


def test_zip_lying_about_its_size_is_stopped_while_unpacking(tmp_path, monkeypatch):
    """Forged small sizes pass the up-front check; unpacking (real byte count / CRC) still refuses it."""
    lib = AdapterLibrary(tmp_path / "adapters")
    zpath = tmp_path / "liar.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/adapter_model.safetensors", b"\0" * 3_000_000)
    from playground.adapters import archive as adapter_zip

    real = adapter_zip.check_zip

    def lying_check(zf, max_bytes):
        files = real(zf, 10**9)
        for info in files:
            info.file_size = 10  # what a forged header would claim
        return files

    monkeypatch.setattr(adapter_zip, "check_zip", lying_check)
    with pytest.raises(AdapterError, match="unpacks to more than|damaged"):
        import_zip(lib, zpath, max_bytes=1_000_000)
    assert _library_state(lib) == []


def test_not_a_zip_and_not_an_adapter(manager, tmp_path):
    before = _library_state(manager.library)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(AdapterError, match="not a readable .zip"):
        manager.import_zip(junk)
    empty = _hostile_zip(tmp_path / "empty.zip", {"notes.txt": b"hello"})
    with pytest.raises(AdapterError, match="not a PEFT adapter"):
        manager.import_zip(empty)
    with pytest.raises(AdapterError, match="does not exist"):
        manager.import_zip(tmp_path / "missing.zip")
    assert _library_state(manager.library) == before


def test_zip_with_only_a_pickle_is_refused(manager, tmp_path):
    cfg = (manager.library.folder("alpha") / "adapter_config.json").read_bytes()
    zpath = _hostile_zip(tmp_path / "pickle.zip", {"p/adapter_config.json": cfg, "p/adapter_model.bin": b"x"})
    with pytest.raises(AdapterError, match="pickle"):
        manager.import_zip(zpath)
    assert "p" not in manager.library.names()


def test_zip_with_corrupted_safetensors_is_refused(manager, tmp_path):
    folder = manager.library.folder("alpha")
    zpath = _hostile_zip(tmp_path / "corrupt.zip", {
        "c/adapter_config.json": (folder / "adapter_config.json").read_bytes(),
        "c/adapter_model.safetensors": (folder / "adapter_model.safetensors").read_bytes()[:-64]})
    with pytest.raises(AdapterError, match="corrupted or truncated"):
        manager.import_zip(zpath)
    assert "c" not in manager.library.names()


def test_export_leaves_only_the_zip(tmp_path, manager):
    out = export_zip(manager.library.folder("beta"), tmp_path / "exports")
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["beta.zip"] and out.stat().st_size > 0
