"""Output that never damages what it was not asked to write (issue 13, defects 1, 5, 10)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest

from optequiv.derive.atomic import write_atomic
from optequiv.derive.cli import main
from optequiv.derive.errors import UserError


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(10)
    assert got == ["through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary left beside it


# The tests below never name /dev/null or /dev/stdout themselves: run as root against a writer
# that renames over its target (the defect), they would replace the machine's device nodes.
# A link of our own to /dev/stdout, and /proc/self/fd/1 (which cannot be renamed over), take
# the same path through the writer.

def test_dev_stdout_and_dash_print(capfd, tmp_path):
    link = tmp_path / "out"
    link.symlink_to("/dev/stdout")
    print("before", flush=True)
    write_atomic(link, "json one\n")
    write_atomic("-", "json two\n")
    write_atomic("/proc/self/fd/1", "json three\n")
    assert capfd.readouterr().out == "before\njson one\njson two\njson three\n"
    assert link.is_symlink()


def test_dev_stdout_redirected_to_a_file_appends_to_it(tmp_path):
    # `--json /dev/stdout > out`: the JSON follows what was printed, in the same file
    out, link = tmp_path / "out.txt", tmp_path / "stdout"
    link.symlink_to("/dev/stdout")
    code = ("import sys\nfrom optequiv.derive.atomic import write_atomic\n"
            "print('printed', flush=True)\nwrite_atomic(sys.argv[1], 'json\\n')\n")
    with open(out, "w") as handle:
        subprocess.run([sys.executable, "-c", code, str(link)], stdout=handle, check=True)
    assert out.read_text() == "printed\njson\n"


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "sub" / "real.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"


def test_a_directory_is_an_error(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        write_atomic(tmp_path, "x")
    with pytest.raises(UserError, match="empty file name"):
        write_atomic("", "x")


def test_bench_json_on_a_folder_is_refused_up_front(tmp_path, capsys):
    assert main(["bench", "--quick", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and len(err.strip().splitlines()) == 1


def test_stdout_full_or_closed_is_one_line_exit_2():
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "list", "--json"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "No space left on device" in proc.stderr
    proc = subprocess.run(f"{sys.executable} -m derive list >&-", shell=True,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "closed" in proc.stderr
