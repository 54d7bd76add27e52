"""Compiled optimizer steps: `torch.compile(opt.step)` of the generated optimizer against the same
of torch.optim's class (inductor, its default mode), and what compiling each costs.

    compiled_rows(quick=False, device="cpu") -> [row, ...]

A case is an optimizer of compiled_cases() in its benchmark configuration (cases.CASES; quick:
adamw only, the issue's example) at 1e6
float32 parameters in 10 tensors (quick: 1e5 in 2; compile time grows with the tensors, one
step being unrolled over them). Dynamo is reset once per case; each side, with inductor's
on-disk graph cache off, gets compile_s = the wall time of its first WARMUP compiled steps (the
compilations happen there: the first step, whose state is made, and the steady one; a step
itself is milliseconds; ours includes building its program from the rule); then the step
times of both in rounds that alternate the sides.
Keys: case, device, dtype, params, tensors, repeats, compiled_ours_ms, compiled_torch_ms
(medians), ratio (ours / torch), compile_ours_s, compile_torch_s, recompiles_after_warmup (new
dynamo graphs during the timed steps of both: 0 expected)."""
from __future__ import annotations

import statistics
import time

import torch

from .cases import CASES
from .optimizers import _device, _label, _params, _sync

WARMUP, BLOCK = 3, 3

def compiled_cases() -> dict:
    """Every benchmark case of a catalogue entry that torch has a class for (Lion's reference
    is plain torch ops: nothing of torch.optim's to compile against); each costs ~10 s."""
    from optequiv.derive.catalogue import ENTRIES

    return {case: spec for case, spec in CASES.items()
            if case in ENTRIES and ENTRIES[case].torch_class}


def _compiled(make, params, sync):
    """(compiled step, compile seconds)."""
    opt = make(params)
    step = torch.compile(opt.step)
    with torch._inductor.config.patch(fx_graph_cache=False):
        sync()
        start = time.perf_counter()
        for _ in range(WARMUP):
            step()
        sync()
    return step, time.perf_counter() - start


def _row(case, spec, numel, tensors, dev, repeats) -> dict:
    from optequiv import numeric
    from optequiv.numeric.reference import torch_reference
    from torch._dynamo.utils import counters

    cls, kwargs = torch_reference(spec)
    generated = numeric.torch_optimizer(spec)
    sync = _sync(dev)
    sides = {"ours": lambda ps: generated(ps, **kwargs), "torch": lambda ps: cls(ps, **kwargs)}
    row = {"case": f"compiled {case}-{_label(numel)}-{tensors}tensors", "device": dev.type,
           "dtype": "float32", "params": numel, "tensors": tensors, "repeats": repeats}
    torch._dynamo.reset()
    steps = {}
    for name, make in sides.items():
        steps[name], row[f"compile_{name}_s"] = _compiled(make, _params(numel, tensors, dev, 0),
                                                          sync)
    graphs = counters["stats"]["unique_graphs"]
    times = {name: [] for name in sides}
    for _ in range(0, repeats, BLOCK):  # rounds alternate the sides: a disturbance hits both
        for name, step in steps.items():
            step()
            for _ in range(BLOCK):
                sync()
                start = time.perf_counter()
                step()
                sync()
                times[name].append((time.perf_counter() - start) * 1e3)
    for name in sides:
        row[f"compiled_{name}_ms"] = statistics.median(times[name])
    row["ratio"] = row["compiled_ours_ms"] / row["compiled_torch_ms"]
    row["recompiles_after_warmup"] = counters["stats"]["unique_graphs"] - graphs
    return row


def compiled_rows(quick: bool = False, device: str = "cpu") -> list:
    dev = _device(device)
    cases = {"adamw": CASES["adamw"]} if quick else compiled_cases()
    numel, tensors = (10**5, 2) if quick else (10**6, 10)
    return [_row(case, spec, numel, tensors, dev, 6 if quick else 30)
            for case, spec in cases.items()]


def compiled_table(rows: list) -> list:
    out = ["| case | device | compiled ours ms | compiled torch ms | ours/torch | compile ours s | "
           "compile torch s | recompiles after warm-up |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['case']} | {r['device']} | {r['compiled_ours_ms']:.3f} | "
                   f"{r['compiled_torch_ms']:.3f} | {r['ratio']:.2f} | {r['compile_ours_s']:.1f} | "
                   f"{r['compile_torch_s']:.1f} | {r['recompiles_after_warmup']} |")
    return out
