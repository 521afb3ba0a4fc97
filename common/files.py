"""Reading and writing the suite's files: atomic writes, the forgiving readers, hashing.

* Every write is atomic (``atomic_write``: a temporary file in the same folder, then
  ``os.replace``), so a reader, or a crash, never sees half a file.
* JSON-lines logs are appended one flushed line at a time, and read with one rule: a
  line cut by a kill ends the log (nothing after it can be trusted).
* A reader either raises a ``UserError`` naming the file (``read_json``,
  ``read_yaml_mapping``) or, where a damaged file only means "nothing known yet",
  returns None (``read_json_or_none``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Tuple, Type

import yaml

from .errors import UserError

__all__ = ["RecordError", "atomic_write", "write_json", "write_yaml", "append_jsonl", "JsonlAppender",
           "read_json", "read_json_or_none", "read_jsonl", "trim_jsonl", "read_yaml_mapping", "file_sha256"]


class RecordError(UserError):
    """A record file that cannot be read: the message names the file."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# ---- writing -----------------------------------------------------------------------------------

def atomic_write(path, write: Callable[[BinaryIO], object]) -> None:
    """``write(f)`` into a temporary file beside ``path``, synced, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path, obj) -> None:
    """``obj`` as indented JSON, atomically (values JSON lacks are written as strings)."""
    data = json.dumps(obj, indent=1, default=str).encode()
    atomic_write(path, lambda f: f.write(data))


def write_yaml(path, obj) -> None:
    """``obj`` as YAML with sorted keys, atomically."""
    data = yaml.safe_dump(obj, sort_keys=True).encode()
    atomic_write(path, lambda f: f.write(data))


def _jsonl_line(obj) -> str:
    return json.dumps(obj, default=str) + "\n"


def append_jsonl(path, obj) -> None:
    """One JSON line, flushed; readers drop a last line cut by a crash."""
    with open(path, "a") as f:
        f.write(_jsonl_line(obj))
        f.flush()


class JsonlAppender:
    """A JSON-lines log kept open for appending (a line per call, flushed)."""

    def __init__(self, path):
        self._f = open(path, "a")

    def write(self, obj) -> None:
        self._f.write(_jsonl_line(obj))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# ---- reading -----------------------------------------------------------------------------------

def read_json(path) -> dict:
    """The JSON object in ``path``; anything else is a ``RecordError`` naming the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({_one_line(exc)})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"{path}: expected a JSON object, found a {type(obj).__name__}")
    return obj


def read_json_or_none(path) -> Optional[dict]:
    """The JSON object in ``path``, or None when it is missing, damaged or not an object."""
    try:
        return read_json(path)
    except RecordError:
        return None


def _jsonl_lines(text: str) -> Iterator[Tuple[str, object]]:
    """(line, value) of a JSON-lines text up to the first line that does not parse: a
    line cut by a kill ends the log, and nothing after it can be trusted."""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return
        yield line, value


def read_jsonl(path) -> List[dict]:
    """The objects of a JSON-lines log (the cut-line rule above); a missing or
    unreadable file is an empty log."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return []
    return [value for _, value in _jsonl_lines(text) if isinstance(value, dict)]


def trim_jsonl(path, keep: Callable[[dict], bool]) -> None:
    """Keep only the objects for which ``keep(obj)`` holds, atomically (a resumed run
    drops what a killed run logged after its last checkpoint, and a cut last line)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = "".join(line + "\n" for line, value in _jsonl_lines(path.read_text())
                   if isinstance(value, dict) and keep(value))
    atomic_write(path, lambda f: f.write(kept.encode()))


def read_yaml_mapping(path, what: Optional[str] = None, holds: str = "flags",
                      error: Type[UserError] = RecordError, loader=yaml.SafeLoader) -> dict:
    """The mapping a YAML file holds (an empty file: ``{}``). Errors are one ``error``
    line that starts with ``what`` (default: the path) and says the file should hold
    a mapping of ``holds``."""
    what = what or str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        values = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise error(f"{what}: not valid YAML: {_one_line(exc)}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise error(f"{what}: expected a mapping of {holds}, not a {type(values).__name__}")
    return values


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (checkpoints are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
