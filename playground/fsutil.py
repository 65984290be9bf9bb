"""Small helpers every package may use: safe names, usable paths, all-or-nothing writes of folders the user
made, the text check of loose API values, and user text quoted in a sentence (stdlib only, so any package
can import it)."""

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
SHOWN_CHARS = 60  # a wrong value quoted in a sentence is cut to this many characters
# Markdown's own characters: user text shown in a Markdown component escapes them, so a prompt's *word* or a
# crafted link's [x](y) is shown as typed instead of formatting the line (& is left: callers that quote HTML
# escape it first, with html.escape)
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#!|~])")


def cut(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first `limit` - 1 and an ellipsis."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(text: str, limit: int) -> str:
    """User text for a sentence: its whitespace runs (newlines too) as single spaces, cut to `limit`."""
    return cut(" ".join(text.split()), limit)


def markdown_literal(text: str) -> str:
    """`text` escaped for a Markdown component, so it shows as typed (see _MARKDOWN_SPECIALS)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def shown(value: Any) -> str:
    """A wrong value as the API caller sent it (JSON), cut short, for a sentence: `5`, `true`, `{"a": 1}`."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**SHOWN_CHARS:
        return f"a number of {len(str(abs(value)))} digits"  # the whole number would swamp the sentence
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        value = cut(value, SHOWN_CHARS)  # cut inside the quotes, so they still close
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:  # e.g. a circular value
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS + 2 else cut(text, SHOWN_CHARS)


def check_str(name: str, value: Any) -> str:
    """`value` if it is text ('' for None: nothing typed), else a ValueError naming the field. Callers keep
    their own sentence for empty text; this one only says a number, list or object is not text."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text (got {shown(value)}).")
    return value


def os_reason(err: OSError) -> str:
    """The system's reason for an OSError in words ("file name too long"), without its errno or repr."""
    return (err.strerror or "the system refused it").lower()


def usable_path(path: str | Path, field: str) -> Path:
    """`path` with ~ expanded and links resolved, or a ValueError naming the field when this system cannot use
    it as a path (an unknown ~user, a NUL character, a name too long…), never the OS's bare exception."""
    if not isinstance(path, (str, Path)):
        raise ValueError(f"{field} must be a path, as text (got {shown(path)}).")
    try:
        resolved = Path(path).expanduser().resolve()
        resolved.exists()  # stat it now: a name too long fails here, with the field named, not in a later read
        return resolved
    except RuntimeError:  # expanduser: ~name of no user here
        reason = "its ~user is not a user on this server"
    except ValueError:  # the only ValueError of a path: "embedded null byte"
        reason = "it contains a NUL character"
    except OSError as err:
        reason = os_reason(err)
    raise ValueError(f"{field}: {shown(str(path))} is not a usable path on this server ({reason}).")


def validate_name(name: str, what: str = "name") -> str:
    """Return the stripped name or raise ValueError: letters, digits and `-_.` only, no path parts."""
    name = check_str(f"The {what}", name).strip()
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
        if path is None or (isinstance(path, str) and not path.strip()):
            raise ValueError(f"{field} is empty.")
        resolved = usable_path(path, field)
        roots = self.roots + ((uploads.resolve(),) if uploads is not None else ())
        if any(resolved == root or root in resolved.parents for root in roots):
            return resolved
        raise ValueError(f"{field}: {path} is outside the folders this server may read (uploads and the data dir "
                         f"{self.roots[0]}{''.join(', ' + str(r) for r in self.roots[1:])}). Upload the file "
                         "instead, or start the app with --allow-path DIR to allow a folder.")
