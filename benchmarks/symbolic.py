"""Costs of the symbolic engine: prove --all, compare of catalogue pairs, unrolling k steps.

Rows: {"case", "seconds", ...}; unrolling rows add "steps", "count_ops" (the recurrence form,
summed over the k steps: what a derivation prints) and "dag_ops" (the composed theta_k with shared
subtrees counted once: what a CSE'd program holds). `fitted_exponent` fits size ~ k^p on k >= 4.
"""
from __future__ import annotations

import math
import subprocess
import sys
import time

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.explain import size
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec

# pairs from the catalogue (proofs/theorems): each is one `compare` a reader may run
CATALOGUE_PAIRS = (
    ("sgd L2 vs decoupled", "sgd(lr=eta, weight_decay=lam)",
     "sgd(lr=eta, weight_decay=lam2, decay=decoupled)"),
    ("sgd L2 vs independent", "sgd(lr=eta, weight_decay=lam)",
     "sgd(lr=eta, weight_decay=k, decay=independent)"),
    ("sgd-momentum L2 vs decoupled", "sgd(lr=eta, momentum=mu, weight_decay=lam)",
     "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)"),
    ("sgd-ema L2 vs decoupled", "sgd(lr=eta, momentum=mu, dampening=mu, weight_decay=lam, buffer=zero)",
     "sgd(lr=eta, momentum=mu, dampening=mu, weight_decay=lam2, buffer=zero, decay=decoupled)"),
    ("sgd-nesterov L2 vs decoupled", "sgd(lr=eta, momentum=mu, nesterov=true, weight_decay=lam)",
     "sgd(lr=eta, momentum=mu, nesterov=true, weight_decay=lam2, decay=decoupled)"),
    ("adam L2 vs adamw", "adam(weight_decay=lam)", "adamw(weight_decay=lam2)"),
    ("adam decoupled flag vs adamw", "adam(weight_decay=lam, decoupled_weight_decay=true)",
     "adamw(weight_decay=lam)"),
    ("adamw torch vs paper", "adamw(lr=alpha, weight_decay=wd_torch)",
     "adamw(lr=alpha, weight_decay=wd_paper, decay=independent)"),
    ("adamw vs decay after step", "adamw(weight_decay=lam)", "adamw(weight_decay=lam, decay=after)"),
    ("preconditioned decay vs penalty", "sgd(lr=alpha/s, weight_decay=lam, decay=independent)",
     "sgd(lr=alpha/s, weight_decay=2*c*s)"),
    ("adam vs amsgrad", "adam", "adam(amsgrad=true)"),
)
# a grid for "compare of any two specs with up to 3 free symbols": every pair of these whose
# union has at most 3 free symbols is compared
SWEEP_SPECS = (
    "sgd(lr=eta)", "sgd(lr=eta, weight_decay=lam)", "sgd(lr=eta, weight_decay=lam, decay=decoupled)",
    "sgd(lr=eta, weight_decay=lam, decay=independent)", "sgd(lr=eta, momentum=mu, weight_decay=lam)",
    "sgd(lr=eta, momentum=mu, weight_decay=lam, decay=decoupled)",
    "sgd(lr=eta, momentum=mu, dampening=mu, buffer=zero)", "sgd(lr=eta, momentum=mu, nesterov=true)",
    "sgd(lr=eta, momentum=0.9, weight_decay=lam, maximize=true)",
    "adam(lr=eta, betas=(0.9, 0.999), eps=1e-8, weight_decay=lam)",
    "adamw(lr=eta, betas=(0.9, 0.999), eps=1e-8, weight_decay=lam)",
    "adam(lr=eta, betas=(mu, 0.999), eps=1e-8, amsgrad=true)",
    "adamw(lr=eta, betas=(0.9, 0.999), eps=1e-8, weight_decay=lam, decay=after)",
    "adamw(lr=eta, weight_decay=lam, betas=(0.9, 0.99), eps=0)",
)
UNROLL_SPECS = (("sgd-momentum", "sgd(lr=eta, momentum=mu, weight_decay=lam)"),
                ("adam", "adam(weight_decay=lam)"))


def prove_all_row() -> dict:
    """`optequiv prove --all` in a fresh process: wall time and peak resident memory."""
    # the child reports its own peak from /proc (VmHWM, in kB): getrusage's ru_maxrss survives
    # exec and so counts the forked benchmark process's pages, which hold 1e7-element tensors
    code = ("import sys\nfrom optequiv.derive.cli import main\n"
            "code = main(['prove', '--all', '--json'])\n"
            "peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "print(peak[0], file=sys.stderr)\n"
            "sys.exit(code)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"prove --all failed: {proc.stderr.strip()}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"case": "prove --all (fresh process)", "seconds": seconds,
            "peak_rss_mb": peak_kb / 1024}


def compare_rows(quick: bool = False) -> list:
    rows = []
    compare("sgd", "sgd(weight_decay=lam)")  # warm-up: imports, not the pairs' own results
    for name, a, b in CATALOGUE_PAIRS[:4] if quick else CATALOGUE_PAIRS:
        start = time.perf_counter()
        result = compare(a, b)
        seconds = time.perf_counter() - start
        free = len(parse_spec(a).symbols() | parse_spec(b).symbols())
        rows.append({"case": f"compare {name}", "seconds": seconds, "free_symbols": free,
                     "verdict": result.verdict})
    return rows


def sweep_rows(quick: bool = False) -> list:
    """Every ordered pair of SWEEP_SPECS with at most 3 free symbols, from torch's start and from
    a general state: the slowest and the median time, and how many were decided."""
    specs = SWEEP_SPECS[:6] if quick else SWEEP_SPECS
    rows = []
    for start in ("start",) if quick else ("start", "state"):
        times, decided, slowest = [], 0, ""
        for a in specs:
            for b in specs:
                if len(parse_spec(a).symbols() | parse_spec(b).symbols()) > 3:
                    continue
                begin = time.perf_counter()
                verdict = compare(a, b, start=start).verdict
                times.append(time.perf_counter() - begin)
                decided += verdict in ("proven", "refuted")
                if times[-1] == max(times):
                    slowest = f"{a} vs {b}"
        times.sort()
        rows.append({"case": f"compare sweep, <= 3 free symbols, from {start}",
                     "seconds": times[-1], "pairs": len(times), "decided": decided,
                     "median_seconds": times[len(times) // 2],
                     "under_2s": sum(t < 2.0 for t in times), "slowest": slowest})
    return rows


def unroll_rows(max_steps: int = 32) -> list:
    """Open-loop unrolling, step by step: time to unroll k steps and the size of the result."""
    rows = []
    for name, text in UNROLL_SPECS:
        spec = parse_spec(text)
        rule, h = build_rule(spec), spec.hyper()
        state, theta = rule.initial_state("start"), Y.theta(0)
        recurrence_ops, elapsed = 0, 0.0
        for k in range(1, max_steps + 1):
            start = time.perf_counter()
            # recurrence form: step k in step k-1's symbols; composed: in theta_0, g_1..g_k
            symbolic = {n: (v if v is None or v.is_number else Y.state(n, k - 1))
                        for n, v in state.items()}
            new_sym, theta_sym = rule.step(symbolic, Y.theta(k - 1), Y.grad(k), h)
            state, theta = rule.step(state, theta, Y.grad(k), h)
            elapsed += time.perf_counter() - start
            recurrence_ops += sp.count_ops(theta_sym) + sum(
                sp.count_ops(v) for v in new_sym.values() if v is not None)
            rows.append({"case": f"unroll {name} k={k}", "seconds": elapsed, "steps": k,
                         "count_ops": int(recurrence_ops), "dag_ops": size(theta)})
    return rows


def fitted_exponent(rows: list, key: str, k_min: int = 4) -> float:
    """Least-squares slope of log(key) against log(k) over k >= k_min: p in size ~ k^p."""
    points = [(math.log(r["steps"]), math.log(r[key])) for r in rows
              if r["steps"] >= k_min and r[key] > 0]
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def symbolic_rows(quick: bool = False) -> list:
    rows = [prove_all_row()] + compare_rows(quick) + sweep_rows(quick) + \
        unroll_rows(16 if quick else 32)
    for name, _ in UNROLL_SPECS:
        mine = [r for r in rows if r["case"].startswith(f"unroll {name} ")]
        rows.append({"case": f"unroll {name} growth", "seconds": mine[-1]["seconds"],
                     "steps": mine[-1]["steps"], "count_ops": mine[-1]["count_ops"],
                     "exponent_count_ops": fitted_exponent(mine, "count_ops"),
                     "exponent_dag_ops": fitted_exponent(mine, "dag_ops"),
                     "exponent_seconds": fitted_exponent(mine, "seconds")})
    return rows
