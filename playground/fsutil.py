"""Small filesystem helpers: safe names and all-or-nothing writes of folders the user made."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def validate_name(name: str, what: str = "name") -> str:
    """Return the stripped name or raise ValueError: letters, digits and `-_.` only, no path parts."""
    name = (name or "").strip()
    if not name:
        raise ValueError(f"The {what} is empty.")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name:
        raise ValueError(f"The {what} {name!r} must not contain path parts ('/', '\\\\' or '..').")
    if not _NAME.match(name):
        raise ValueError(f"The {what} {name!r} may only use letters, digits, '-', '_' and '.', "
                         "start with a letter or digit, and be at most 100 characters.")
    return name


def unique_name(parent: Path, name: str) -> str:
    """`name`, or `name-2`, `name-3`, … whichever does not exist under `parent` yet."""
    if not (parent / name).exists():
        return name
    n = 2
    while (parent / f"{name}-{n}").exists():
        n += 1
    return f"{name}-{n}"


@contextlib.contextmanager
def atomic_dir(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder next to `target`; on success it is renamed to `target` in one step.

    On any error the temp folder is removed and `target` is untouched. With overwrite, an existing
    target is moved aside first and deleted only after the new one is in place.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target.name} already exists.")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        yield tmp
        old = None
        if overwrite and target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
            os.replace(target, old / target.name)
        elif target.exists():  # another save took the name while this one was writing: keep both, refuse this one
            raise FileExistsError(f"{target.name} already exists.")
        try:
            os.rename(tmp, target)  # fails on a non-empty target, so a save that got in between is never replaced
        except OSError as err:
            if old is not None and not target.exists():
                os.replace(old / target.name, target)  # put the one it was to replace back
            if target.exists():
                raise FileExistsError(f"{target.name} already exists.") from err
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class PathPolicy:
    """Which folders on the server a path typed into the UI or sent to the API may point into.

    Uploads land in Gradio's upload folder and the app's own files in the data dir; anything else must be
    allowed by the operator (`--allow-path DIR`), so a student holding the room's password cannot make the
    server read the teacher's files. Links are resolved first, so a link cannot lead outside.
    """

    roots: tuple[Path, ...]

    @classmethod
    def create(cls, data_dir: Path, allowed: Iterable[Path] = ()) -> PathPolicy:
        return cls(tuple(Path(p).expanduser().resolve() for p in (data_dir, *allowed)))

    def check(self, path: str | Path, field: str, *, uploads: Path | None = None) -> Path:
        """The resolved path, or a ValueError naming the field and the rule."""
        if not str(path or "").strip():
            raise ValueError(f"{field} is empty.")
        resolved = Path(path).expanduser().resolve()
        roots = self.roots + ((uploads.resolve(),) if uploads is not None else ())
        if any(resolved == root or root in resolved.parents for root in roots):
            return resolved
        raise ValueError(f"{field}: {path} is outside the folders this server may read (uploads and the data dir "
                         f"{self.roots[0]}{''.join(', ' + str(r) for r in self.roots[1:])}). Upload the file "
                         "instead, or start the app with --allow-path DIR to allow a folder.")
