"""The kernel cache runs no code it did not build, and a broken toolchain is a build error, never
a numeric verdict (issue 13, defect 2)."""
from __future__ import annotations

import os
import subprocess

import pytest

from optequiv.derive.cli import main
from optequiv.numeric import c_build
from optequiv.numeric.fused import fused_kernel

HAS_CC = pytest.mark.skipif(c_build.find_compiler() is None, reason="no C compiler on this machine")
SOURCE = "double optequiv_probe(double x) { return 2 * x; }\n"
ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "kernels"
    monkeypatch.setenv(c_build.CACHE_ENV, str(folder))
    monkeypatch.setattr(c_build, "_loaded", {})
    monkeypatch.delenv("CC", raising=False)
    fused_kernel.cache_clear()
    yield folder
    fused_kernel.cache_clear()


def _planted(tmp_path, marker) -> bytes:
    """A shared library that, once loaded, writes `marker`: the code an attacker would plant."""
    c_file, so = tmp_path / "evil.c", tmp_path / "evil.so"
    c_file.write_text('#include <stdio.h>\n__attribute__((constructor)) static void run(void) '
                      f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
                      "double optequiv_probe(double x) { return -1; }\n")
    subprocess.run([c_build.find_compiler(), "-shared", "-fPIC", str(c_file), "-o", str(so)],
                   check=True)
    return so.read_bytes()


@HAS_CC
def test_a_planted_library_is_never_loaded(cache, tmp_path):
    cache.mkdir(mode=0o700)
    marker = tmp_path / "planted-code-ran"
    entry = cache / f"{c_build.library_hash(SOURCE, c_build.find_compiler())}.so"
    entry.write_bytes(_planted(tmp_path, marker))
    before = c_build.compile_count
    lib = c_build.load(SOURCE)
    assert not marker.exists()
    assert c_build.compile_count == before + 1  # built again, from our source
    import ctypes
    lib.optequiv_probe.restype, lib.optequiv_probe.argtypes = ctypes.c_double, [ctypes.c_double]
    assert lib.optequiv_probe(3.0) == 6.0
    # negative control: planted bytes under a correct MAC are loaded (the MAC, not the file
    # name, decides), so the test above can fail (another source: dlopen keeps the first)
    other = SOURCE + "/* another entry */\n"
    entry = cache / f"{c_build.library_hash(other, c_build.find_compiler())}.so"
    planted = _planted(tmp_path, marker)
    entry.write_bytes(planted)
    (cache / f"{entry.name}.mac").write_text(c_build._mac(c_build._key(cache), planted))
    c_build.load(other)
    assert marker.exists()


@HAS_CC
def test_the_cache_is_created_private_and_reused(cache):
    c_build.load(SOURCE)
    assert cache.stat().st_mode & 0o777 == 0o700
    assert (cache / ".key").stat().st_mode & 0o777 == 0o600
    c_build.clear_process_cache()
    before = c_build.compile_count
    c_build.load(SOURCE)
    assert c_build.compile_count == before  # a verified entry is loaded, not rebuilt


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_cache_others_can_write_is_refused(cache, mode):
    cache.mkdir()
    cache.chmod(mode)
    with pytest.raises(c_build.CacheNotPrivate, match="can be written by group or others"):
        c_build.cache_dir()


def test_a_cache_under_a_folder_others_can_write_is_refused(cache):
    cache.parent.chmod(0o777)  # anyone could rename the cache away and put another in its place
    try:
        with pytest.raises(c_build.CacheNotPrivate, match=str(cache.parent)):
            c_build.cache_dir()
        cache.parent.chmod(0o1777)  # sticky, as /tmp: nobody can rename what they do not own
        assert c_build.cache_dir() == cache
    finally:
        cache.parent.chmod(0o700)


@ROOT_ONLY
def test_a_cache_owned_by_someone_else_is_refused(cache):
    cache.mkdir(mode=0o700)
    os.chown(cache, 65534, 65534)
    with pytest.raises(c_build.CacheNotPrivate, match="not owned by you"):
        c_build.cache_dir()


@HAS_CC
def test_an_empty_cache_variable_means_the_default_never_the_current_folder(
        tmp_path, monkeypatch):
    monkeypatch.setenv(c_build.CACHE_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(c_build, "_loaded", {})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    c_build.load(SOURCE)
    assert list(work.iterdir()) == []
    assert c_build.cache_dir() == tmp_path / "xdg" / "optequiv" / "kernels"
    assert any(p.suffix == ".so" for p in c_build.cache_dir().iterdir())


@pytest.mark.parametrize("cc", ['"gcc', "false", "/no/such/compiler"])
def test_a_broken_cc_is_a_build_error_never_a_mismatch(cache, monkeypatch, capsys, cc):
    monkeypatch.setenv("CC", cc)
    assert main(["crosscheck", "adam", "--fused", "--steps", "2"]) == 2
    out, err = capsys.readouterr()
    assert "MISMATCH" not in out and "inf" not in out
    assert err.count("\n") == 1 and ("$CC" in err or "failed" in err), err
