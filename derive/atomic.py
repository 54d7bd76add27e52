"""File output that never damages what it was not asked to write.

A regular file (or a path that does not exist yet) is written atomically: a temporary file in
the target's own directory, then a rename over the target, so an interrupted run never leaves a
half-written file. A symlink is followed first, so the rename lands on the file it points to and
the link itself stays a link. A device, a FIFO or a socket (`/dev/stdout`, `/dev/null`, a named
pipe) is written through, as `> /dev/stdout` would: renaming over it would replace the device
node. `-` is standard output. A directory is an error.
"""
from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from pathlib import Path

from .errors import UserError


def _write_through(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


_STANDARD = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD = re.compile(r"^/(?:proc/self|dev)/fd/(\d+)$")


def _stream(path) -> int | None:
    """The open file descriptor a path names (`-`, /dev/stdout, /dev/fd/3, /proc/self/fd/1 or a
    link to one of them), else None. Written to as a descriptor it shares the shell's offset,
    so `--json /dev/stdout > out` appends after what was printed rather than renaming over
    `out`, or writing over its start."""
    hop = os.path.abspath(path) if str(path) != "-" else "/dev/stdout"
    for _ in range(40):  # the kernel's own limit on a chain of links
        if hop in _STANDARD:
            return _STANDARD[hop]
        match = _FD.match(hop)
        if match:
            return int(match.group(1))
        if not os.path.islink(hop):
            return None
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
    return None


def check_writable(path) -> None:
    """Refuse up front (UserError) a path write_atomic could not write, before a long run."""
    shown = str(path)
    if shown == "":
        raise UserError("cannot write to an empty file name")
    if _stream(path) is not None:
        return
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UserError(f"cannot write {shown}: is a directory")
    if not target.exists() and not target.parent.is_dir():
        raise UserError(f"cannot write {shown}: the directory {target.parent} does not exist")


def output_folder(path) -> Path:
    """The folder a command writes into (`-o DIR`), created if need be; an empty name, a file or
    a folder that cannot be made is one line (UserError)."""
    if str(path).strip() == "":
        raise UserError("-o: empty; give the folder to write into")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {path}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"-o {path}: cannot create the directory: {error.strerror}")
    return out


def write_atomic(path, data) -> Path:
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    shown = str(path)
    check_writable(path)
    fd = _stream(path)
    if fd is not None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()  # what was printed before stays before
        try:
            _write_through(fd, payload)
        except OSError as error:
            raise UserError(f"cannot write {shown}: {error.strerror or error}")
        return Path(path)
    target = Path(os.path.realpath(path))  # every symlink on the way, followed
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise UserError(f"cannot write {shown}: {error.strerror or error}")
    try:
        if mode is not None and not stat.S_ISREG(mode):
            fd = os.open(target, os.O_WRONLY | os.O_APPEND)  # a device or a pipe: never replaced
            try:
                _write_through(fd, payload)
            finally:
                os.close(fd)
            return Path(path)
        _replace(target, payload)
    except OSError as error:
        raise UserError(f"cannot write {shown}: {error.strerror or error}")
    return Path(path)


def _replace(target: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
