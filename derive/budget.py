"""Time budgets for SymPy calls that can run for minutes (simplify on Max, Groebner bases).

`within(seconds)` raises OutOfTime when the block runs longer; budgets nest (the earliest
deadline wins). It uses SIGALRM, so it only acts in the main thread of a process on POSIX; in
any other thread the block runs unbounded. An engine that runs out of time says "undecided",
never guesses.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager

_deadlines: list = []


LIMIT_ENV = "OPTEQUIV_TIME_LIMIT"
COMMAND_SECONDS = 300.0  # a command's whole run, unless LIMIT_ENV says otherwise (0: no limit)


class OutOfTime(BaseException):
    """BaseException, as KeyboardInterrupt: an `except Exception` that reports one failure and
    goes on (a cross-check run, a fallback) must not swallow the end of the budget."""


def command_limit() -> float | None:
    """Seconds a command may run ($OPTEQUIV_TIME_LIMIT, default COMMAND_SECONDS); None: none.
    Every symbolic command runs inside it, so no input keeps a CI pipeline waiting."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return COMMAND_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        return COMMAND_SECONDS
    return seconds if seconds > 0 and seconds == seconds else None


def _usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _arm() -> None:
    if _deadlines:
        remaining = max(min(_deadlines) - time.monotonic(), 1e-3)
        signal.setitimer(signal.ITIMER_REAL, remaining)
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)


RING_AGAIN = 0.05  # seconds


def _ring(signum, frame):
    # A signal that lands in a __del__ or a garbage-collection callback raises there, and
    # Python prints the exception and goes on ("Exception ignored in ..."): the budget would be
    # lost. So the alarm rings again shortly, until a `within` block's exit re-arms or stops it.
    signal.setitimer(signal.ITIMER_REAL, RING_AGAIN)
    raise OutOfTime()


@contextmanager
def within(seconds: float):
    if not _usable():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _ring)
    deadline = time.monotonic() + seconds
    _deadlines.append(deadline)
    _arm()
    try:
        yield
    finally:
        _deadlines.remove(deadline)
        _arm()
        signal.signal(signal.SIGALRM, previous if _deadlines or previous else signal.SIG_DFL)


def attempt(seconds: float, fn, *args, fallback=None):
    """fn(*args), or `fallback` when this call alone takes longer than `seconds`; an enclosing
    budget that has run out meanwhile still propagates."""
    try:
        with within(seconds):
            return fn(*args)
    except OutOfTime:
        if _deadlines and min(_deadlines) <= time.monotonic():
            raise
        return fallback
