"""Adapter .zip export and a careful import: no absolute paths, no `..`, no links, a cap on the unpacked size.

An uploaded zip is untrusted. Every entry name is checked before anything is written, the declared sizes
are summed against the cap, and the bytes actually written are counted too (a zip can lie about sizes).
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from playground.adapters.library import (
    CONFIG_FILE,
    AdapterError,
    AdapterInfo,
    AdapterLibrary,
    default_name,
)
from playground.fsutil import unique_name

MAX_UNPACKED_BYTES = 2 * 1024**3  # LoRA adapters are MBs to a few hundred MBs; 2 GiB is generous
MAX_ENTRIES = 200
_CHUNK = 1 << 20


def export_zip(folder: Path, out_dir: Path) -> Path:
    """Zip an adapter folder as `<out_dir>/<name>.zip` with the files under a `<name>/` folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{folder.name}.zip"
    tmp = target.with_name(f".{target.name}.part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(folder.iterdir()):
                if f.is_file() and not f.is_symlink():
                    zf.write(f, f"{folder.name}/{f.name}")
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a zip entry, or AdapterError for absolute paths and `..` parts."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise AdapterError(f"The zip contains an absolute path ({name!r}); refusing to unpack it.")
    if any(part == ".." for part in path.parts):
        raise AdapterError(f"The zip contains a '..' path ({name!r}) that would write outside its folder; "
                           "refusing to unpack it.")
    return path


def check_zip(zf: zipfile.ZipFile, max_bytes: int = MAX_UNPACKED_BYTES) -> list[zipfile.ZipInfo]:
    """Validate every entry before extracting anything; return the file entries."""
    entries = zf.infolist()
    if len(entries) > MAX_ENTRIES:
        raise AdapterError(f"The zip has {len(entries)} entries; an adapter has a handful (limit {MAX_ENTRIES}).")
    files, total = [], 0
    for info in entries:
        _safe_member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise AdapterError(f"The zip contains a symbolic link ({info.filename!r}); refusing to unpack it.")
        if info.flag_bits & 0x1:
            raise AdapterError("The zip is encrypted; export it again without a password.")
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_bytes:
            raise AdapterError(f"The zip unpacks to more than {max_bytes / 1024**2:.0f} MB; that is not an adapter.")
        files.append(info)
    return files


def extract_safely(zip_path: Path, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Extract a checked zip into `dest`, counting real bytes against the cap."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise AdapterError(f"{Path(zip_path).name} is not a readable .zip file ({err}).") from err
    with zf:
        written = 0
        for info in check_zip(zf, max_bytes):
            target = dest.joinpath(*_safe_member_path(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise AdapterError(f"The zip unpacks to more than {max_bytes / 1024**2:.0f} MB; "
                                               "that is not an adapter.")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
                raise AdapterError(f"The zip is damaged: {info.filename} could not be read ({err}).") from err


def find_adapter_root(folder: Path) -> Path:
    """The folder holding adapter_config.json: the zip root or its single top-level folder."""
    if (folder / CONFIG_FILE).is_file():
        return folder
    subdirs = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(("__MACOSX", "."))]
    if len(subdirs) == 1 and (subdirs[0] / CONFIG_FILE).is_file():
        return subdirs[0]
    raise AdapterError(f"The zip has no {CONFIG_FILE} at its top level or in a single folder: "
                       "it is not a PEFT adapter.")


def import_zip(library: AdapterLibrary, zip_path: Path, name: str | None = None,
               max_bytes: int = MAX_UNPACKED_BYTES) -> AdapterInfo:
    """Unpack into a scratch folder, check it like a folder import, then copy it into the library."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise AdapterError(f"{zip_path} does not exist.")
    library.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".unzip-", dir=library.root))  # hidden: never listed
    try:
        extract_safely(zip_path, scratch, max_bytes)
        root = find_adapter_root(scratch)
        if not name or not name.strip():
            stem = root.name if root != scratch else zip_path.stem
            name = unique_name(library.root, default_name(stem))
        return library.import_folder(root, name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
