"""`optequiv bench --quick` runs and produces every row (no timed assertions: figures live in
BENCHMARKS.md, measured by this command)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from optequiv.derive.catalogue import ENTRIES

OPTIMIZER_KEYS = {"case", "entry", "spec", "reference", "device", "ours_ms", "torch_loop_ms",
                  "torch_foreach_ms", "torch_fused_ms", "torch_fastest", "torch_fastest_ms",
                  "ratio_vs_fastest", "ratio_vs_fused", "ratio_vs_loop", "gbps", "copy_ms",
                  "copy_gbps", "gbps_vs_copy", "torch_fastest_gbps_vs_copy", "bytes_per_step",
                  "copy_bytes"}


def run(*args):
    return subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=600)


def test_bench_quick_produces_every_row(tmp_path):
    out = tmp_path / "rows.json"
    proc = run("bench", "--quick", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    optimizer = [r for r in rows if "ours_ms" in r]
    cases = [r["case"] for r in optimizer]
    assert cases == [f"{name}-1e6-{layout}" for layout in ("1tensor", "100tensors")
                     for name in ENTRIES] + ["gpt2-small-shaped-adamw-148tensors"]
    for r in optimizer:
        assert OPTIMIZER_KEYS <= set(r), OPTIMIZER_KEYS - set(r)
        assert r["ours_ms"] > 0 and r["gbps"] > 0 and r["copy_gbps"] > 0
        assert r["ours_mode"] == "fused"  # ours is fused=True, the C kernel, on the CPU
        torch_ms = {n: r[f"{n}_ms"] for n in ("torch_loop", "torch_foreach", "torch_fused")
                    if r[f"{n}_ms"] is not None}
        assert r["torch_fastest_ms"] == min(torch_ms.values()) == r[f"{r['torch_fastest']}_ms"]
        assert r["ratio_vs_fastest"] == pytest.approx(r["ours_ms"] / r["torch_fastest_ms"])
        assert r["ratio_vs_loop"] == pytest.approx(r["ours_ms"] / r["torch_loop_ms"])
        assert r["gbps_vs_copy"] == pytest.approx(r["gbps"] / r["copy_gbps"])
        assert r["torch_fastest_gbps_vs_copy"] == pytest.approx(
            r["gbps_vs_copy"] * r["ours_ms"] / r["torch_fastest_ms"])
        assert r["copy_bytes"] == r["bytes_per_step"]  # the same bytes (all under COPY_CAP)
        expected = ENTRIES[r["entry"]].torch_class or "torch ops"
        assert r["reference"].startswith(expected)
    gpt2 = optimizer[-1]
    assert gpt2["tensors"] == 148 and gpt2["entry"] == "adamw"
    assert gpt2["torch_fused_ms"] and gpt2["torch_foreach_ms"] and gpt2["torch_loop_ms"]
    assert "| gpt2-small-shaped-adamw-148tensors |" in proc.stdout
    symbolic = {r["case"] for r in rows if "ours_ms" not in r and "compiled_ours_ms" not in r}
    assert "prove --all (fresh process)" in symbolic
    assert any(c.startswith("compare sweep") for c in symbolic)
    assert {"unroll adam growth", "unroll sgd-momentum growth"} <= symbolic
    assert {f"unroll adam k={k}" for k in range(1, 17)} <= symbolic
    assert any(c.startswith("crosscheck throughput") for c in symbolic)
    unroll = [r for r in rows if r["case"].startswith("unroll adam k=")]
    assert all({"case", "seconds", "steps", "count_ops"} <= set(r) for r in unroll)
    assert "## Targets" in proc.stdout and "| case | device | ours ms |" in proc.stdout
    compiled = [r for r in rows if "compiled_ours_ms" in r]
    assert [r["case"] for r in compiled] == ["compiled adamw-1e5-2tensors"]
    for r in compiled:
        assert r["compiled_ours_ms"] > 0 and r["compiled_torch_ms"] > 0
        assert r["compile_ours_s"] > 0 and r["compile_torch_s"] > 0
        assert r["recompiles_after_warmup"] == 0
    assert "## Compiled steps" in proc.stdout
    assert "## float32 distance to torch's CPU loop" in proc.stdout
    assert {"ulp sgd loop", "ulp adam fused"} <= {r["case"] for r in rows}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_bench_cuda_without_cuda_is_one_line_exit_2():
    proc = run("bench", "--device", "cuda")
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_bench_json_into_a_missing_directory_is_exit_2(tmp_path):
    proc = run("bench", "--quick", "--json", str(tmp_path / "no" / "rows.json"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
