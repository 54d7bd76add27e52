"""Compiling generated C into a shared library, once: cached on disk and in the process.

    lib = load(source)            # a ctypes.CDLL; compiles only on the first use of this source

The disk cache (`$OPTEQUIV_KERNEL_CACHE`, else `$XDG_CACHE_HOME/optequiv/kernels`, else
`~/.cache/optequiv/kernels`) holds one `<hash>.so` per source. The hash covers everything the
binary depends on: the source, the compiler and its flags, and the CPU (-march=native code may
not run on another CPU sharing the home directory). A library is written under a temporary name
and renamed into place, so concurrent processes (pytest-xdist workers) never load a half-written
file. When the cache directory cannot be written, a per-process temporary one is used.

Flags, and why each is safe for the numbers:
  -O3 -march=native   vector code for this CPU (on the AVX-512 machine of BENCHMARKS.md, Adam's
                      kernel is ~15% faster at 1e7 parameters than with x86-64's baseline SSE2,
                      ~2x at 1e6, where the data sits in cache);
  -ffp-contract=off   no a*b + c fused into an FMA behind our back: every operation rounds as
                      written, so results do not depend on the vector width or the CPU;
  -fno-math-errno     sqrt need not set errno, so it becomes one vector instruction; IEEE
                      results are unchanged (unlike -ffast-math, which is not used);
  -fopenmp            the parallel loop. torch's Linux wheel loads its own libgomp.so.1 first,
                      so the kernel shares that runtime and its threads; with a torch built on
                      another OpenMP the process would hold two thread pools. A compiler
                      without OpenMP gets a second try without it: a serial kernel.
  -w                  the generated code is not for people to read warnings about.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

BASE_FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC",
              "-std=gnu11", "-w")
OPENMP_FLAGS = ("-fopenmp",)
CACHE_ENV = "OPTEQUIV_KERNEL_CACHE"

_loaded: dict = {}  # hash -> ctypes.CDLL, this process's cache
compile_count = 0  # compilations this process ran (tests read it: a cached kernel adds none)
_fallback_dir: Path | None = None


class CompilerNotFound(RuntimeError):
    """fused=True needs a C compiler at run time and none was found."""


class KernelBuildError(RuntimeError):
    """The compiler rejected generated source (a bug in the printer, or a broken toolchain)."""


def find_compiler() -> str | None:
    """$CC's program if set (its flags are ignored), else the first of cc, gcc, clang on PATH."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        return shutil.which(shlex.split(cc)[0])
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_compiler() -> str:
    cc = find_compiler()
    if cc is None:
        raise CompilerNotFound(
            "fused=True compiles the generated step with a C compiler, and none was found ($CC, "
            "cc, gcc or clang on PATH). Install one (e.g. apt-get install gcc), or construct the "
            "optimizer without fused=True: the default runs the generated step as torch "
            "operations.")
    return cc


@lru_cache(maxsize=None)
def _cpu() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() + platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def cache_dir() -> Path:
    global _fallback_dir
    base = os.environ.get(CACHE_ENV)
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "optequiv", "kernels")
    path = Path(base)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    if _fallback_dir is None:
        _fallback_dir = Path(tempfile.mkdtemp(prefix="optequiv-kernels-"))
    return _fallback_dir


def library_hash(source: str, cc: str) -> str:
    h = hashlib.sha256()
    for part in (source, cc, " ".join(BASE_FLAGS + OPENMP_FLAGS), _cpu()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def build(source: str, target: Path, cc: str | None = None) -> None:
    """Compile `source` into the shared library `target` (no cache: load() is the cached way;
    benchmarks time this to report the one-off cost)."""
    global compile_count
    cc = cc or require_compiler()
    with tempfile.TemporaryDirectory(prefix="optequiv-build-") as tmp:
        c_file, out = Path(tmp) / "kernel.c", Path(tmp) / "kernel.so"
        c_file.write_text(source)
        errors = []
        for extra in (OPENMP_FLAGS, ()):  # a compiler without OpenMP: a serial kernel
            cmd = [cc, *BASE_FLAGS, *extra, str(c_file), "-o", str(out), "-lm"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                break
            errors.append(f"$ {' '.join(cmd)}\n{done.stderr.strip()[-2000:]}")
        else:
            raise KernelBuildError("compiling a generated optimizer step failed:\n"
                                   + "\n".join(errors))
        compile_count += 1
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(out, partial)
        os.replace(partial, target)  # atomic: another process sees no file or the whole file


def load(source: str) -> ctypes.CDLL:
    """The shared library for `source`, compiled on first use (per machine, not per process)."""
    cc = require_compiler()
    key = library_hash(source, cc)
    lib = _loaded.get(key)
    if lib is None:
        path = cache_dir() / f"{key}.so"
        if not path.exists():
            build(source, path, cc)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:  # a damaged cache entry (a full disk, a killed copy): build it again
            build(source, path, cc)
            lib = ctypes.CDLL(str(path))
        _loaded[key] = lib
    return lib


def clear_process_cache() -> None:
    """Forget loaded libraries (the disk cache stays): the next load() reads the disk."""
    _loaded.clear()
