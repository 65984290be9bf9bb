"""Small filesystem helpers: safe names and all-or-nothing writes of folders the user made."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
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
        if target.exists():
            old = target.parent / f".old-{target.name}-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
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
