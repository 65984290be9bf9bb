"""Reading a user's data file: checked first (size, type, text), then parsed by `datasets`, with a sentence
naming the line when a row is not valid JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playground.fsutil import os_reason, shown

MAX_FILE_BYTES = 200 * 1024 * 1024


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while mapping small previews (they would flood the app's console)."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path) -> str:
    """Refuse missing, empty, oversized, binary and unknown-type files and folders; return the `datasets`
    loader name. An OSError (unreadable, name too long) becomes a sentence, never the OS's own text."""
    try:
        return _check_file(path)
    except OSError as err:
        raise ValueError(f"{shown(path.name)} could not be read ({os_reason(err)}).") from None


def _check_file(path: Path) -> str:
    if path.is_dir():
        raise ValueError(f"{path.name} is a folder, not a file: give the path of a .jsonl, .json or .csv file.")
    if not path.is_file():
        raise ValueError(f"{path.name} does not exist (upload it again).")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path.name} is empty.")
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path.name} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB.")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"{path.name}: only .jsonl, .json and .csv files are supported.")
    with path.open("rb") as f:
        head = f.read(8192)
    try:
        if b"\x00" in head:
            raise UnicodeDecodeError("utf-8", head, 0, 1, "NUL byte")
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # a multi-byte character cut at the 8 KiB boundary is fine
            raise ValueError(f"{path.name} is not a UTF-8 text file (it looks binary); "
                             "upload JSONL, JSON or CSV text.") from None
    if not head.strip():
        raise ValueError(f"{path.name} contains only whitespace.")
    return "csv" if suffix == ".csv" else "json"


def _explain_json_error(path: Path) -> str | None:
    """Name the first line that is not a JSON object (the `datasets` error does not say which)."""
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            return f"{path.name} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}."
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            return f"{path.name} must hold a list of objects (one per row)."
        return None
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return f"Line {number} of {path.name} is not valid JSON: {err.msg} (column {err.colno})."
            if not isinstance(value, dict):
                return f"Line {number} of {path.name} is not a JSON object ({{...}})."
    return None


def load_file(path: Path) -> Any:
    from datasets import load_dataset

    loader = check_file(path)
    try:
        with quiet_datasets():
            ds = load_dataset(loader, data_files=str(path), split="train", keep_in_memory=True)
    except Exception as err:  # datasets wraps parse errors; find the line ourselves for a useful message
        detail = _explain_json_error(path) if loader == "json" else None
        first = (str(err.__cause__ or err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(detail or f"Could not read {path.name}: {first}") from None
    return ds
