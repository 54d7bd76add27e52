"""Atomic file output: write a temporary file beside the target, then rename it over the target,
so an interrupted run never leaves a half-written file (rename is atomic on POSIX)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path, data) -> Path:
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
