"""Compiled optimizer steps: `torch.compile(opt.step)` of the generated optimizer against the same
of torch.optim's class (inductor, its default mode), and what compiling each costs.

    compiled_rows(quick=False, device="cpu") -> [row, ...]

A case is an optimizer of optimizers.CASES (quick: adamw only, the issue's example) at 1e6
float32 parameters in 10 tensors (quick: 1e5). Per side: dynamo reset and inductor's on-disk
graph cache off, then compile_s = the wall time of the first WARMUP compiled steps (the
compilations happen there: the first step, whose state is made, and the steady one; a step
itself is milliseconds); then the step times in rounds that alternate the two sides.
Keys: case, device, dtype, params, tensors, repeats, compiled_ours_ms, compiled_torch_ms
(medians), ratio (ours / torch), compile_ours_s, compile_torch_s, recompiles_after_warmup (new
dynamo graphs during the timed steps, ours and torch: 0 expected)."""
from __future__ import annotations

import statistics
import time

import torch

from .optimizers import CASES, _device, _label, _params, _sync

WARMUP, BLOCK = 3, 3
TENSORS = 10


def _compiled(make, params, sync):
    """(compiled step, compile seconds)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    opt = make(params)
    step = torch.compile(opt.step)
    with torch._inductor.config.patch(fx_graph_cache=False):
        sync()
        start = time.perf_counter()
        for _ in range(WARMUP):
            step()
        sync()
    graphs = counters["stats"]["unique_graphs"]
    return step, time.perf_counter() - start, graphs


def _row(case, spec, numel, dev, repeats) -> dict:
    import numeric
    from numeric.reference import torch_reference
    from torch._dynamo.utils import counters

    cls, kwargs = torch_reference(spec)
    generated = numeric.torch_optimizer(spec)
    sync = _sync(dev)
    sides = {"ours": lambda ps: generated(ps, **kwargs), "torch": lambda ps: cls(ps, **kwargs)}
    row = {"case": f"compiled {case}-{_label(numel)}-{TENSORS}tensors", "device": dev.type,
           "dtype": "float32", "params": numel, "tensors": TENSORS, "repeats": repeats}
    times, recompiles = {}, {}
    for name, make in sides.items():  # compiled one after the other: dynamo's state is global
        counters.clear()
        step, row[f"compile_{name}_s"], graphs = _compiled(make, _params(numel, TENSORS, dev, 0),
                                                           sync)
        times[name] = []
        for _ in range(0, repeats, BLOCK):
            step()
            for _ in range(BLOCK):
                sync()
                start = time.perf_counter()
                step()
                sync()
                times[name].append((time.perf_counter() - start) * 1e3)
        recompiles[name] = counters["stats"]["unique_graphs"] - graphs
    for name in sides:
        row[f"compiled_{name}_ms"] = statistics.median(times[name])
    row["ratio"] = row["compiled_ours_ms"] / row["compiled_torch_ms"]
    row["recompiles_after_warmup"] = recompiles
    return row


def compiled_rows(quick: bool = False, device: str = "cpu") -> list:
    dev = _device(device)
    cases = {"adamw": CASES["adamw"]} if quick else CASES
    numel = 10**5 if quick else 10**6
    return [_row(case, spec, numel, dev, 6 if quick else 30) for case, spec in cases.items()]


def compiled_table(rows: list) -> list:
    out = ["| case | device | compiled ours ms | compiled torch ms | ours/torch | compile ours s | "
           "compile torch s | recompiles after warm-up (ours, torch) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        again = r["recompiles_after_warmup"]
        out.append(f"| {r['case']} | {r['device']} | {r['compiled_ours_ms']:.3f} | "
                   f"{r['compiled_torch_ms']:.3f} | {r['ratio']:.2f} | {r['compile_ours_s']:.1f} | "
                   f"{r['compile_torch_s']:.1f} | {again['ours']}, {again['torch']} |")
    return out
