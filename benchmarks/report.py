"""The benchmark as Markdown: the machine, the optimizer table (ratios against torch measured in
the same run), the symbolic engine's costs, and each target with its computed status."""
from __future__ import annotations

import datetime
import os
import platform

PROVE_TARGET_S, COMPARE_TARGET_S, RSS_TARGET_MB = 10.0, 2.0, 1024.0
MEMORY_BOUND = 0.9  # a step this close to the copy's rate moves its bytes as fast as memory can


def machine() -> str:
    import sympy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), sympy "
            f"{sympy.__version__}; {datetime.date.today().isoformat()}")


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def optimizer_table(rows: list) -> list:
    if not rows:
        return ["(no optimizer rows: numeric benchmarks need torch)"]
    out = ["| case | device | ours ms | torch loop ms | torch foreach ms | torch fused ms | "
           "ours/torch fastest | ours/loop | GB/s (of copy) | copy GB/s | "
           "extra memory ours / torch fastest (x param bytes) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = r.get("ours_spread_ms")
        ours = _ms(r["ours_ms"]) + (f" ± {spread:.3f}" if isinstance(spread, float) else "")
        memory = (f"{r['peak_extra_bytes_ratio_ours']:.2f} / "
                  f"{r['peak_extra_bytes_ratio_fastest']:.2f}"
                  if r.get("peak_extra_bytes_ratio_ours") is not None
                  and r.get("peak_extra_bytes_ratio_fastest") is not None else "n/a")
        mode = f" ({r['ours_mode']})" if r.get("ours_mode") else ""
        fastest = (f"{_ratio(r['ratio_vs_fastest'])} ({r['torch_fastest'].split('_', 1)[1]})"
                   if r.get("torch_fastest") else "n/a")
        of_copy = f" ({r['gbps_vs_copy']:.0%})" if r.get("gbps_vs_copy") else ""
        out.append(f"| {r['case']} | {r['device']} | {ours}{mode} | {_ms(r['torch_loop_ms'])} | "
                   f"{_ms(r['torch_foreach_ms'])} | {_ms(r['torch_fused_ms'])} | {fastest} | "
                   f"{_ratio(r['ratio_vs_loop'])} | {r['gbps']:.1f}{of_copy} | "
                   f"{r['copy_gbps']:.1f} | {memory} |")
    out.append("")
    seen = {}
    for r in rows:
        seen.setdefault(r["entry"], (r["spec"], r["reference"]))
    out.append("Configurations (torch's defaults, switches on) and what each is measured against: "
               + "; ".join(f"{name}: `{spec}` vs {ref}" for name, (spec, ref) in seen.items())
               + ".")
    out.append("\nGB/s: the bytes a step must move (params, grads and state read, params and "
               "state written) over our median step time; copy GB/s: the same count for "
               "dst.copy_(src) of as many bytes (at most 1 GiB), timed in the same rounds. A copy "
               "also pays write-allocate traffic that an in-place step does not, and at 1e6 "
               "parameters the tensors stay in cache, so a step can exceed it. ours/torch "
               "fastest: over the fastest of torch's loop, foreach and fused in the same run.")
    compiles = [r["compile_s"] for r in rows if r.get("compile_s")]
    if compiles:
        out.append(f"One-off compile of our fused kernels (cached on disk afterwards): "
                   f"{min(compiles):.2f}-{max(compiles):.2f} s, not included in step times.")
    return out


def symbolic_table(rows: list) -> list:
    out = ["| case | seconds | details |", "|---|---|---|"]
    for r in rows:
        if r["case"].startswith("unroll") and "growth" not in r["case"]:
            continue
        details = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in r.items() if k not in ("case", "seconds"))
        out.append(f"| {r['case']} | {r['seconds']:.3f} | {details} |")
    return out


def unroll_table(rows: list) -> list:
    by = {}
    for r in rows:
        if r["case"].startswith("unroll") and "growth" not in r["case"]:
            name = r["case"].split()[1]
            by.setdefault(r["steps"], {})[name] = r
    names = sorted({n for per in by.values() for n in per})
    head = "| k | " + " | ".join(f"{n} s | {n} count_ops | {n} dag_ops" for n in names) + " |"
    out = [head, "|---|" + "---|---|---|" * len(names)]
    for k in sorted(by):
        if k not in (1, 2, 4, 8, 12, 16, 24, 32):
            continue
        cells = []
        for n in names:
            r = by[k].get(n)
            cells.append(f"{r['seconds']:.3f} | {r['count_ops']} | {r['dag_ops']}" if r else " | | ")
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    return out


def targets(optimizer: list, symbolic: list) -> list:
    def status(ok):
        return "met" if ok else "NOT met"

    out = []
    prove = next(r for r in symbolic if r["case"].startswith("prove --all"))
    out.append(f"- `prove --all` in {prove['seconds']:.2f} s (target < {PROVE_TARGET_S:g} s: "
               f"{status(prove['seconds'] < PROVE_TARGET_S)}); peak RSS {prove['peak_rss_mb']:.0f} MB "
               f"(target < {RSS_TARGET_MB:g} MB: {status(prove['peak_rss_mb'] < RSS_TARGET_MB)}).")
    compares = [r for r in symbolic if r["case"].startswith("compare")
                and not r["case"].startswith("compare sweep")]
    worst = max(compares, key=lambda r: r["seconds"])
    out.append(f"- `compare` of catalogue pairs: slowest {worst['seconds']:.2f} s ({worst['case'][8:]}) "
               f"(target < {COMPARE_TARGET_S:g} s: {status(worst['seconds'] < COMPARE_TARGET_S)}).")
    for r in symbolic:
        if r["case"].startswith("compare sweep"):
            out.append(f"- {r['case']}: {r['under_2s']} of {r['pairs']} pairs under "
                       f"{COMPARE_TARGET_S:g} s (slowest {r['seconds']:.2f} s: {r['slowest']}; "
                       f"median {r['median_seconds']:.3f} s); {r['decided']} decided"
                       + ("" if r["decided"] == r["pairs"] else
                          f", {r['pairs'] - r['decided']} undecided (never guessed)")
                       + f" (target: all under {COMPARE_TARGET_S:g} s: "
                       f"{status(r['under_2s'] == r['pairs'])}).")
    for r in symbolic:
        if r["case"].endswith("growth"):
            out.append(f"- {r['case']}: count_ops ~ k^{r['exponent_count_ops']:.2f}, composed "
                       f"DAG ~ k^{r['exponent_dag_ops']:.2f}, time ~ k^{r['exponent_seconds']:.2f} "
                       f"(polynomial: {status(r['exponent_count_ops'] < 3)}).")
    if optimizer:
        ranked = [r for r in optimizer if r.get("ratio_vs_fastest") is not None]
        worst = max(ranked, key=lambda r: r["ratio_vs_fastest"]) if ranked else None
        looped = [r for r in optimizer if r.get("ratio_vs_loop") is not None]
        worst_loop = max(looped, key=lambda r: r["ratio_vs_loop"]) if looped else None
        if worst:
            over = [r for r in ranked if r["ratio_vs_fastest"] > 1.0]
            bound = sum((r.get("torch_fastest_gbps_vs_copy") or 0) >= MEMORY_BOUND for r in over)
            out.append(f"- ours / torch fastest <= 1.0: worst {worst['ratio_vs_fastest']:.2f} "
                       f"({worst['case']}, vs {worst['torch_fastest']}); {len(over)} of "
                       f"{len(ranked)} rows over, {bound} of them with torch's fastest already "
                       f"at >= {MEMORY_BOUND:.0%} of the copy's GB/s (memory-bound: a tie within "
                       f"noise): {status(not over)}.")
        if worst_loop:
            out.append(f"- ours / torch loop <= 1.0: worst {worst_loop['ratio_vs_loop']:.2f} "
                       f"({worst_loop['case']}): {status(worst_loop['ratio_vs_loop'] <= 1.0)}.")
    return out


def markdown(optimizer: list, symbolic: list, throughput: dict | None, command: str,
             compiled: list = ()) -> str:
    lines = ["# Benchmarks", "", f"Machine: {machine()}", "", f"Command: `{command}`", "",
             "Every figure below was measured by this command in one run; ratios compare ours "
             "with torch measured in the same run (median of repeated timed runs after warm-up).",
             "", "## Targets", ""] + targets(optimizer, symbolic)
    lines += ["", "## Generated optimizers against torch.optim (float32)", ""]
    lines += optimizer_table(optimizer)
    if compiled:
        from .compiled import compiled_table

        lines += ["", "## Compiled steps: torch.compile(opt.step), inductor (float32)", "",
                  "Step times after warm-up, and the one-off compile time of each side "
                  "(dynamo reset, inductor's graph cache off), reported apart.", ""]
        lines += compiled_table(compiled)
    lines += ["", "## Symbolic engine", ""] + symbolic_table(symbolic)
    lines += ["", "### Unrolling k steps, open loop", "",
              "count_ops: the recurrence form summed over the k steps (what a derivation "
              "prints); dag_ops: the composed theta_k with shared subtrees counted once (what a "
              "CSE'd program holds).", ""] + unroll_table(symbolic)
    if throughput:
        lines += ["", "## Cross-check throughput", "",
                  f"{throughput['configs_per_minute']:.0f} configurations verified per minute "
                  f"({throughput['configurations']} configurations, {throughput['passed']} passed, "
                  f"{throughput.get('agree_partial', 0)} agreeing where torch ran but partial "
                  "because torch itself raised, "
                  f"{throughput['seconds']:.1f} s; {throughput['case']})."]
    return "\n".join(lines) + "\n"
