"""Optimizer step times: the optimizers numeric generates against torch.optim's implementations.

    optimizer_rows(quick=False, device="cpu", repeats=None) -> [row, ...]

A case is a catalogue entry in its representative configuration (cases.CASES: every entry,
torch's defaults with its switches on) at a size (1e6 or 1e7 float32 parameters, quick: 1e6
only) laid out as one tensor or as 100 equal tensors, plus one AdamW case on GPT-2 small's 148
parameter tensors (124M parameters; quick: the same tensors, narrow). Each case builds one
optimizer per implementation on its own parameters (the GPT-2 case: on one shared set, memory),
with gradients set once, and times opt.step() alone:
  torch_loop (foreach=False), torch_foreach, torch_fused (None where torch has none; for an
  entry torch has no class for, references.py's torch-ops equivalent: `reference` says which),
  ours_fused (numeric.torch_optimizer(spec)(..., fused=True): the C kernel), and `copy`
  (dst.copy_(src) of the bytes the step must move, up to COPY_CAP). Off the CPU fused=True
  runs the eager step, so ours is ours_eager there (ours_mode says which).
Warm-up steps come first (state is created, our kernel is compiled or loaded). Timing runs in
rounds; each round visits every implementation in a shuffled order and times a few consecutive
steps after one untimed step, so a disturbance (another process, a frequency change) falls on all
of them alike, while each timed step finds its own tensors in the caches as a loop of steps
does (at 1e6 parameters the working set fits this machine's 32 MiB L3; at 1e7 it does not).
Medians and spreads (min, max, quartiles) per implementation. Thread settings are left as they
are (torch's default: all cores).

Ratios are medians of the same run: ratio_vs_fastest = ours / the fastest of torch's
implementations (torch_fastest names it), ratio_vs_fused = ours / torch_fused, ratio_vs_loop =
ours / torch_loop. gbps counts the bytes a step must move: every tensor read once (params,
grads, state) and every written tensor (params, state) written once, over our median time;
copy_gbps is the same count (bytes read + bytes written) for the row's copy, timed in the same
rounds on as many bytes (copy_bytes; beyond the caches a copy's rate does not depend on its
size, so COPY_CAP bounds the memory it takes), and gbps_vs_copy = gbps / copy_gbps. A copy also
reads dst into the cache before overwriting it (write-allocate), traffic its figure does not
count; an in-place step reads everything it writes, so a step can show more GB/s than the copy.
At 1e6 parameters the tensors stay in the L3 cache between steps and gbps exceeds any DRAM
figure, as the copy's does. torch_fastest_gbps_vs_copy is the same fraction for torch's fastest:
where both are near 1, both steps move the bytes as fast as a copy and their ratio is 1 within
the machine's noise (no code can do better than the memory allows).
Keys per implementation NAME (ours, ours_fused, ours_eager, torch_loop, torch_foreach,
torch_fused, copy): NAME_ms (median), NAME_min_ms, NAME_max_ms, NAME_iqr_ms ([q1, q3]),
NAME_spread_ms (half the interquartile range, for "median ± spread"), NAME_timed (its timed
steps: `repeats`, or fewer for a torch implementation that _time_steps stopped as slow);
peak_extra_bytes_ratio_NAME (see below; _ours, _fused and _fastest are ours, torch_fused's and
torch_fastest's).
compile_s: one compilation of the case's kernel, caches bypassed (a training run pays it once
per machine; later runs load the cached library); None in quick mode.

Memory: peak extra bytes of one step, as a multiple of the parameters' bytes. On the CPU, from
torch.profiler(profile_memory=True)'s allocation events (running sum of sizes, in time order: the
peak of what the step allocated and had not freed); tracemalloc cannot see tensor storage. Our
kernel allocates nothing through torch, so its figure is 0. On CUDA, torch.cuda's peak statistic.
"""
from __future__ import annotations

import contextlib
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from .cases import CASES, gpt2_shapes
from .references import torch_sides

SIZES = (10**6, 10**7)
QUICK_SIZES = (10**6,)
LAYOUTS = {"1tensor": 1, "100tensors": 100}
GPT2_ENTRY = "adamw"  # the GPT-2 row: AdamW, as GPT-2 was trained
COPY_CAP = 2**30  # bytes a row's copy moves at most (read + written)
WARMUP = 3  # untimed steps first: state is created, our kernel compiled or loaded
BLOCK = 3  # timed steps in a row per implementation and round
SETTLE, SLOW = 9, 2.0  # see _time_steps: timed steps before a slow torch implementation stops
TORCH = ("torch_loop", "torch_foreach", "torch_fused")


def _repeats(quick: bool, numel: int) -> int:
    """Timed steps per implementation when the caller gives none."""
    if quick:
        return BLOCK
    # single 1e7 runs spread +-15% here: 45 steps settle a median. A 1e6 step is 0.1-0.4 ms
    # and spreads +-30% (caches shared with the other implementations' tensors): ten times
    # as many steps cost under a second per implementation and settle its median as well
    return 45 if numel >= 10**7 else 450


def _label(numel: int) -> str:
    mantissa, exponent = f"{numel:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"optimizer_rows(device={device!r}): CUDA is not available on this "
                           "machine (torch.cuda.is_available() is False)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"optimizer_rows: device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def _sync(dev: torch.device):
    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


# -- one case -------------------------------------------------------------------------------------

def _params(numel: int, tensors: int, dev, seed: int) -> list:
    return _shaped([(numel // tensors,)] * tensors, dev, seed)


def _shaped(shapes: list, dev, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=g).to(dev))
        p.grad = (torch.randn(shape, generator=g) * 1e-2).to(dev)
        out.append(p)
    return out


class _Copy:
    """dst.copy_(src) as a step: the bandwidth reference, timed in the same rounds."""

    def __init__(self, nbytes: int, dev):
        self.src = torch.ones(max(nbytes // 8, 1), dtype=torch.float32, device=dev)
        self.dst = torch.empty_like(self.src)
        self.nbytes = 8 * self.src.numel()  # read + written

    def step(self):
        self.dst.copy_(self.src)


def _optimizers(spec, make_params, dev) -> tuple:
    """({implementation: optimizer or None}, the label of the torch side)."""
    from optequiv import numeric

    opts, reference = torch_sides(spec, make_params)
    ours = numeric.torch_optimizer(spec)
    if dev.type == "cpu":
        opts["ours_fused"] = ours(make_params(), fused=True)
    if dev.type != "cpu" or not opts:  # off the CPU, or nothing else to compare with
        opts["ours_eager"] = ours(make_params())
    return opts, reference


def _time_steps(opts: dict, repeats: int, sync) -> dict:
    """`repeats` timed steps per implementation, in rounds: each round visits every
    implementation once, in a shuffled order, and runs one untimed step (its tensors back into
    the caches after the others ran) then up to BLOCK timed ones. After SETTLE timed steps, a
    torch implementation more than SLOW times slower than the fastest torch one so far stops:
    it cannot be the fastest, and its median only feeds ratio_vs_loop (a 1e7 loop of Adam is
    10x its fused kernel: 45 steps of it were most of the benchmark's time)."""
    names = [n for n, o in opts.items() if o is not None]
    for name in names:
        for _ in range(WARMUP):
            opts[name].step()
    times = {n: [] for n in names}
    order = random.Random(0)
    for first in range(0, repeats, BLOCK):
        if first == SETTLE:
            med = {n: statistics.median(times[n]) for n in names if n in TORCH}
            names = [n for n in names if n not in med or med[n] <= SLOW * min(med.values())]
        order.shuffle(names)
        for name in names:
            step = opts[name].step
            step()
            for _ in range(min(BLOCK, repeats - first)):
                sync()
                start = time.perf_counter()
                step()
                sync()
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def peak_extra_bytes(step, device: str = "cpu") -> int | None:
    """The most memory `step()` had allocated at once beyond what existed before (None when
    this torch's profiler does not expose allocation events)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile

        prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        with _quiet_stderr():  # kineto logs a line to fd 2 at start and at stop
            prof.start()
        try:
            step()
        finally:
            with _quiet_stderr():
                prof.stop()
        events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node.tag == _EventType.Allocation:
                events.append((node.start_time_ns, node.extra_fields.alloc_size))
    except (ImportError, AttributeError, RuntimeError):
        return None
    level = peak = 0
    for _, size in sorted(events):
        level += size
        peak = max(peak, level)
    return peak


@contextlib.contextmanager
def _quiet_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _compile_seconds(spec: str) -> float | None:
    """One compilation of the case's steady-state kernel, bypassing every cache."""
    from optequiv import numeric
    from optequiv.numeric import c_build

    if c_build.find_compiler() is None:
        return None
    source = numeric.torch_optimizer(spec).source(fused=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        c_build.build(source, Path(tmp) / "kernel.so")
        return time.perf_counter() - start


def _bytes_per_step(spec: str, numel: int) -> int:
    """Reads of params, grads and state tensors, writes of params and state tensors, once each
    (the state tensors counted on a probe parameter after one step)."""
    from optequiv import numeric
    probe = torch.nn.Parameter(torch.zeros(2))
    probe.grad = torch.zeros(2)
    opt = numeric.torch_optimizer(spec)([probe])
    opt.step()
    state = [v for v in opt.state[probe].values() if torch.is_tensor(v) and v.shape == (2,)]
    return numel * 4 * (3 + 2 * len(state))


def _row(case: str, text: str, make_params, numel: int, tensors: int, dev, repeats: int) -> dict:
    from optequiv.derive.spec import parse_spec

    spec = parse_spec(text)
    opts, reference = _optimizers(spec, make_params, dev)
    nbytes = _bytes_per_step(spec, numel)
    opts["copy"] = _Copy(min(nbytes, COPY_CAP), dev)
    times = _time_steps(opts, repeats, _sync(dev))
    best = "ours_fused" if "ours_fused" in times else "ours_eager"
    times["ours"] = times[best]
    med = {n: statistics.median(t) for n, t in times.items()}
    row = {"case": case, "entry": spec.name, "spec": text, "reference": reference,
           "device": dev.type, "dtype": "float32", "params": numel, "tensors": tensors,
           "threads": torch.get_num_threads(), "repeats": repeats, "ours_mode": best.split("_")[1]}
    for name in ("ours", "ours_fused", "ours_eager", *TORCH, "copy"):
        row[f"{name}_ms"] = med.get(name)
    torch_times = {n: med[n] for n in TORCH if med.get(n)}
    if not torch_times and best != "ours_eager":  # nothing to compare with: our eager step
        torch_times = {"ours_eager": med["ours_eager"]}
    fastest = min(torch_times, key=torch_times.get) if torch_times else None
    row["torch_fastest"] = fastest
    row["torch_fastest_ms"] = med.get(fastest)
    row["ratio_vs_fastest"] = med["ours"] / med[fastest] if fastest else None
    row["ratio_vs_fused"] = med["ours"] / med["torch_fused"] if med.get("torch_fused") else None
    row["ratio_vs_loop"] = med["ours"] / med["torch_loop"] if med.get("torch_loop") else None
    row["bytes_per_step"] = nbytes
    row["gbps"] = nbytes / (med["ours"] / 1e3) / 1e9
    row["copy_bytes"] = opts["copy"].nbytes
    row["copy_gbps"] = opts["copy"].nbytes / (med["copy"] / 1e3) / 1e9
    row["gbps_vs_copy"] = row["gbps"] / row["copy_gbps"]
    row["torch_fastest_gbps_vs_copy"] = (nbytes / med[fastest] / 1e6 / row["copy_gbps"]
                                         if fastest else None)
    for name, t in times.items():
        q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
        row[f"{name}_min_ms"], row[f"{name}_max_ms"] = min(t), max(t)
        row[f"{name}_iqr_ms"] = [q[0], q[2]]
        row[f"{name}_spread_ms"] = (q[2] - q[0]) / 2
        row[f"{name}_timed"] = len(t)
    for name, opt in opts.items():
        if name != "copy":
            peak = None if opt is None else peak_extra_bytes(opt.step, dev.type)
            row[f"peak_extra_bytes_ratio_{name}"] = None if peak is None else peak / (numel * 4)
    row["peak_extra_bytes_ratio_ours"] = row[f"peak_extra_bytes_ratio_{best}"]
    row["peak_extra_bytes_ratio_fastest"] = row.get(f"peak_extra_bytes_ratio_{fastest}")
    row["peak_extra_bytes_ratio_fused"] = row.pop("peak_extra_bytes_ratio_torch_fused", None)
    return row


def optimizer_rows(quick: bool = False, device: str = "cpu", repeats: int | None = None) -> list:
    """One row per case (see the module docstring for the keys and how they are measured)."""
    dev = _device(device)
    # no C off the CPU; quick (a test of the keys) skips a dozen uncached compilations
    compile_s = {case: _compile_seconds(spec) if dev.type == "cpu" and not quick else None
                 for case, spec in CASES.items()}
    rows = []
    for numel in (QUICK_SIZES if quick else SIZES):
        for layout, tensors in LAYOUTS.items():
            for case, spec in CASES.items():
                row = _row(f"{case}-{_label(numel)}-{layout}", spec,
                           lambda: _params(numel, tensors, dev, 0), numel, tensors, dev,
                           repeats or _repeats(quick, numel))
                row["compile_s"] = compile_s[case]
                rows.append(row)
                gc.collect()
    rows.append(gpt2_row(quick, dev, repeats))
    rows[-1]["compile_s"] = compile_s.get(GPT2_ENTRY)
    gc.collect()
    return rows


def gpt2_row(quick: bool, dev, repeats: int | None = None) -> dict:
    """AdamW on GPT-2 small's parameter list; every implementation steps the same parameters
    (124M of them: one set, not one per implementation, keeps the case in a few GB)."""
    shapes = gpt2_shapes(quick)
    shared = _shaped(shapes, dev, 0)
    numel = sum(p.numel() for p in shared)
    name = "gpt2-small-shaped" if quick else "gpt2-small"
    return _row(f"{name}-{GPT2_ENTRY}-{len(shapes)}tensors", CASES[GPT2_ENTRY],
                lambda: shared, numel, len(shapes), dev, repeats or (BLOCK if quick else 9))
