"""Compiling generated C into a shared library, once: cached on disk and in the process.

    lib = load(source)            # a ctypes.CDLL; compiles only on the first use of this source

The disk cache (`$OPTEQUIV_KERNEL_CACHE`, else `$XDG_CACHE_HOME/optequiv/kernels`, else
`~/.cache/optequiv/kernels`; an empty variable counts as unset) holds one `<hash>.so` per source.
The hash covers everything the binary depends on: the source, the compiler and its flags, and the
CPU (-march=native code may not run on another CPU sharing the home directory). A library is
written under a temporary name and renamed into place, so concurrent processes (pytest-xdist
workers) never load a half-written file. When the cache directory cannot be written, a
per-process temporary one is used.

Loading a library runs its code, so the cache is treated as ssh treats ~/.ssh: it is created
0700, and refused (CacheNotPrivate) when it, or a folder above it, is not owned by the user (or
root) or can be written by group or others (unless sticky, as /tmp). Each entry carries an HMAC
of its bytes (`<hash>.so.mac`) under a key only this user can read (`.key`, 0600); a library
whose MAC is missing or wrong (planted, damaged, half-copied) is never loaded: it is built again.

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
import hmac
import os
import stat
import platform
import shlex
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from optequiv.derive.errors import UserError

BASE_FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC",
              "-std=gnu11", "-w")
OPENMP_FLAGS = ("-fopenmp",)
CACHE_ENV = "OPTEQUIV_KERNEL_CACHE"
BUILD_TIMEOUT = 300  # seconds: a compiler that hangs is an error, not a stalled pipeline

_loaded: dict = {}  # hash -> ctypes.CDLL, this process's cache
compile_count = 0  # compilations this process ran (tests read it: a cached kernel adds none)
_fallback_dir: Path | None = None


class ToolchainError(UserError, RuntimeError):
    """A missing or broken toolchain, or an unsafe cache: the user's environment to fix (one
    line, exit 2 on the command line), never a numeric verdict of a cross-check."""


class CompilerNotFound(ToolchainError):
    """fused=True needs a C compiler at run time and none was found."""


class KernelBuildError(ToolchainError):
    """The compiler rejected generated source (a bug in the printer, or a broken toolchain)."""


class CacheNotPrivate(ToolchainError):
    """The kernel cache could be written by someone else: its libraries cannot be trusted."""


def find_compiler() -> str | None:
    """$CC's program if set (its flags are ignored), else the first of cc, gcc, clang on PATH.
    A $CC that names no program is CompilerNotFound, not a silent fallback to another one."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        try:
            words = shlex.split(cc)
        except ValueError as error:
            raise CompilerNotFound(f"$CC={cc!r} is not a valid command line ({error})") from None
        found = shutil.which(words[0]) if words else None
        if found is None:
            raise CompilerNotFound(f"$CC={cc!r}: no such program on PATH")
        return os.path.abspath(found)
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
    """The cache folder, absolute (dlopen never searches for a bare name), checked private."""
    global _fallback_dir
    base = os.environ.get(CACHE_ENV) or None  # empty: unset, not "the current folder"
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "optequiv", "kernels")
    path = Path(os.path.abspath(os.path.expanduser(base)))
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK)
    except OSError:
        writable = False
    if writable:
        check_private(path)
        return path
    if _fallback_dir is None:
        _fallback_dir = Path(tempfile.mkdtemp(prefix="optequiv-kernels-"))  # 0700 by mkdtemp
    return _fallback_dir


def check_private(path: Path) -> None:
    """CacheNotPrivate unless only this user (or root) can change what `path` holds: the folder
    owned by the user and writable by no one else; every folder above it owned by the user or
    root and writable by no one else unless sticky (/tmp), as ssh checks ~/.ssh."""
    uid = os.getuid()
    real = Path(os.path.realpath(path))
    for folder in (real, *real.parents):
        info = os.stat(folder)
        mine = info.st_uid == uid if folder == real else info.st_uid in (uid, 0)
        shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if folder != real and info.st_mode & stat.S_ISVTX:
            shared = 0
        if not mine or shared:
            who = "is not owned by you" if not mine else "can be written by group or others"
            raise CacheNotPrivate(
                f"the kernel cache {path} is not private: {folder} {who}, so a library in it "
                f"could have been planted; use a private folder (chmod go-w {folder}, or set "
                f"${CACHE_ENV} to a folder of your own)")


def _key(folder: Path) -> bytes:
    """This cache's secret MAC key, created once (0600, by exclusive create: racing processes
    agree on one key)."""
    path = folder / ".key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
    key = path.read_bytes()
    if len(key) != 32:  # a half-written key (a killed process): entries under it are rebuilt
        raise OSError("kernel cache key damaged")
    return key


def _mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _verified(path: Path) -> bool:
    """True when the library at `path` is one this user's process built (its MAC matches)."""
    try:
        data = path.read_bytes()
        recorded = Path(f"{path}.mac").read_text().strip()
        return hmac.compare_digest(recorded, _mac(_key(path.parent), data))
    except (OSError, UnicodeDecodeError):
        return False


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
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as error:
                raise KernelBuildError(f"compiling a generated optimizer step with {cc} failed: "
                                       f"{error}") from None
            if done.returncode == 0:
                break
            errors.append(_error_line(done.stderr or done.stdout))
        else:
            raise KernelBuildError(f"compiling a generated optimizer step with {cc} failed "
                                   f"(exit {done.returncode}): {errors[0]}")
        compile_count += 1
        data = out.read_bytes()
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, target)  # atomic: another process sees no file or the whole file
        try:
            mac = Path(f"{target}.mac")
            partial = mac.with_name(f"{mac.name}.{os.getpid()}.tmp")
            partial.write_text(_mac(_key(target.parent), data))
            os.replace(partial, mac)
        except OSError:
            pass  # no MAC: the entry is never trusted, so it is built again next time


def _error_line(stderr: str) -> str:
    """The compiler's first error, as one line (the whole output is too long for a message)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0][:300]


def load(source: str) -> ctypes.CDLL:
    """The shared library for `source`, compiled on first use (per machine, not per process)."""
    cc = require_compiler()
    key = library_hash(source, cc)
    lib = _loaded.get(key)
    if lib is None:
        path = cache_dir() / f"{key}.so"  # absolute: cache_dir() is
        if not _verified(path):  # absent, planted, damaged or half-copied: never loaded
            build(source, path, cc)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as error:
            raise KernelBuildError(f"loading the compiled step {path} failed: {error}") from None
        _loaded[key] = lib
    return lib


def clear_process_cache() -> None:
    """Forget loaded libraries (the disk cache stays): the next load() reads the disk."""
    _loaded.clear()
