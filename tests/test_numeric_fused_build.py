"""The C printer and its build: every expression form, the caches, the compiler flags, the errors,
memory, and the benchmark function's rows.

Cache tests point $OPTEQUIV_KERNEL_CACHE at a fresh directory and empty the in-process caches,
so that they count real compilations (numeric.c_build.compile_count).
"""
from __future__ import annotations

import pytest
import sympy as sp
import torch

import optequiv.numeric.fused as fused_module
from optequiv.derive import symbols as Y
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.cli import main
from optequiv.derive.spec import as_spec
from optequiv.numeric import c_build, torch_optimizer
from optequiv.numeric.c_codegen import c_source
from optequiv.numeric.fused import FusedKernel, fused_kernel
from optequiv.numeric.program import GRAD, THETA, Program, cached_program
from optequiv.numeric.structure import structure_key
from optequiv.numeric.torch_codegen import compile_torch

HAS_CC = pytest.mark.skipif(c_build.find_compiler() is None,
                            reason="no C compiler on this machine")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty disk cache and empty in-process caches; both restored afterwards."""
    monkeypatch.setenv(c_build.CACHE_ENV, str(tmp_path / "kernels"))
    monkeypatch.setattr(c_build, "_loaded", {})
    fused_kernel.cache_clear()
    yield tmp_path / "kernels"
    fused_kernel.cache_clear()


def program(spec: str, absent=frozenset(), **on):
    h = {"momentum": 1.0 if on.get("momentum") else 0.0,
         "weight_decay": 1.0 if on.get("decay") else 0.0}
    key = structure_key(as_spec(spec), h=h, flags=on.get("flags", {}))
    return cached_program(key, frozenset(absent))


def _params(n=7, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(n, generator=g, dtype=dtype))
    p.grad = torch.randn(n, generator=g, dtype=dtype)
    return p


# -- the printer -----------------------------------------------------------------------------

def _exotic_program() -> Program:
    """Every form the C printer knows, in one made-up step (no rule uses all of them)."""
    t, m, v = (Y.state(n, 0) for n in ("t", "m", "v"))
    h = {n: Y.hyper(n) for n in ("lr", "beta1", "beta2", "eps", "weight_decay")}
    th, g = THETA, GRAD
    new_m = sp.Max(m, g) - sp.Min(th, g) * sp.sign(g) + sp.Abs(g) ** h["beta1"]
    new_v = sp.exp(-sp.Abs(g)) * v + sp.log(1 + g ** 2) * h["beta2"] + 1 / (1 + g ** 2)
    new_theta = th - h["lr"] * new_m / (sp.sqrt(new_v) + h["eps"]) \
        + th ** 3 * h["weight_decay"] / (t + 1) - h["lr"] * new_v ** sp.Rational(-1, 2) / 1000
    outputs = (("t", t + 1), ("m", new_m), ("v", new_v), ("theta", new_theta))
    return Program("exotic", tuple(h), ("t", "m", "v"), frozenset(), frozenset(),
                   ("step", "exp_avg", "exp_avg_sq"), frozenset({"t"}),
                   (("t", sp.Integer(0)), ("m", sp.Integer(0)), ("v", sp.Integer(0))), None, (),
                   outputs, frozenset(h.values()) | {t})


@HAS_CC
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_every_expression_form_matches_the_eager_printer(dtype):
    prog = _exotic_program()
    eager, kernel = compile_torch(prog), FusedKernel(prog)
    h = dict(lr=0.1, beta1=0.7, beta2=0.2, eps=1e-3, weight_decay=0.05)
    p, q = _params(9, dtype), _params(9, dtype)
    for x in (p.grad, q.grad):
        x[3] = float("nan")
    states = [{"step": torch.tensor(2.0), "exp_avg": torch.full((9,), 0.5, dtype=dtype),
               "exp_avg_sq": torch.full((9,), 2.0, dtype=dtype)} for _ in range(2)]
    for _ in range(3):
        with torch.no_grad():
            eager(p, p.grad, states[0], **h)
        kernel.step(dtype, [q], [states[1]], h, torch.float32)
    rtol = 64 * torch.finfo(dtype).eps
    torch.testing.assert_close(q, p, rtol=rtol, atol=rtol, equal_nan=True)
    for key in states[0]:
        torch.testing.assert_close(states[1][key], states[0][key], rtol=rtol, atol=rtol,
                                   equal_nan=True)
    assert torch.isnan(q[3]) and not torch.isnan(q[:3]).any()


def test_the_c_source_is_the_rule_and_no_torch():
    text = torch_optimizer("adamw").source(fused=True)
    assert text.startswith("/* optequiv fused step: adamw(")
    assert "#pragma omp parallel" in text and "opt_lerp_float(m, grad" in text
    assert "torch" not in text.split("*/", 1)[1]
    first = torch_optimizer("sgd(momentum=0.9)").source(first_step=True, fused=True)
    assert "absent state: buf" in first and "buf_p[j] = grad;" in first


# -- the caches ------------------------------------------------------------------------------

@HAS_CC
def test_kernels_compile_once_per_machine_and_load_once_per_process(fresh_cache):
    spec = "sgd(lr=0.1, momentum=0.9)"
    before = c_build.compile_count
    opt = torch_optimizer(spec)([_params()], fused=True)
    opt.step(), opt.step()  # the first step's program (lazy buffer), then the steady one
    compiled = c_build.compile_count - before
    assert compiled == 2 and len(list(fresh_cache.glob("*.so"))) == 2
    loaded = dict(c_build._loaded)
    again = torch_optimizer(spec)([_params()], fused=True)  # a new class, same programs
    again.step(), again.step()
    assert c_build.compile_count - before == 2 and c_build._loaded == loaded
    # a new process: nothing loaded, everything on disk
    c_build.clear_process_cache()
    fused_kernel.cache_clear()
    third = torch_optimizer(spec)([_params()], fused=True)
    third.step(), third.step()
    assert c_build.compile_count - before == 2 and len(c_build._loaded) == 2
    # negative control: other programs are compiled (nesterov's first step and later steps)
    torch_optimizer(spec)([_params()], fused=True, nesterov=True).step()
    assert c_build.compile_count - before == 4


@HAS_CC
def test_a_damaged_cache_entry_is_built_again(fresh_cache):
    source = c_source(program("adamw", decay=True))
    entry = c_build.cache_dir() / f"{c_build.library_hash(source, c_build.find_compiler())}.so"
    entry.write_bytes(b"not a shared library")  # as a killed copy or a full disk leaves it
    before = c_build.compile_count
    assert hasattr(c_build.load(source), "optequiv_step_float")
    assert c_build.compile_count == before + 1


@HAS_CC
def test_an_unwritable_cache_directory_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(c_build.CACHE_ENV, str(blocker / "kernels"))
    monkeypatch.setattr(c_build, "_fallback_dir", None)
    where = c_build.cache_dir()
    assert where.is_dir() and blocker not in where.parents


@HAS_CC
def test_native_and_generic_vector_code_give_the_same_bits(fresh_cache, monkeypatch):
    """-march=native is safe because contraction is off: the vector width changes no rounding."""
    progs = [program("adamw", decay=True, flags={"amsgrad": True}),
             program("sgd(momentum=0.9)", momentum=True, decay=True, flags={"nesterov": True})]
    h = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, momentum=0.9,
             dampening=0.0)
    # a kernel takes every scalar of its entry, optequiv's own keys too (Hyper.torch False)
    h.update({s.name: 0.01 for name in ("adamw", "sgd") for key in ENTRIES[name].own
              for s in ENTRIES[name].hyper(key).scalars})
    n = 1000
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e-40, -0.0, 3e38])
    results = []
    for flags in (c_build.BASE_FLAGS, tuple(f for f in c_build.BASE_FLAGS if "march" not in f)):
        monkeypatch.setattr(c_build, "BASE_FLAGS", flags)
        out = []
        for prog in progs:
            kernel = FusedKernel(prog)
            p = _params(n, torch.float32, seed=3)
            p.grad[:6] = special
            g = torch.Generator().manual_seed(5)
            state = {k: torch.rand(n, generator=g) for k in kernel.tensor_keys}
            state.update({k: torch.tensor(4.0) for k in kernel.scalar_keys})
            kernel.step(torch.float32, [p], [state], h, torch.float32)
            out.append([p.detach().clone()] + [state[k].clone() for k in kernel.tensor_keys])
        results.append(out)
    assert c_build.compile_count >= 4
    for a, b in zip(*results):
        for x, y in zip(a, b):
            assert torch.equal(x.view(torch.int32), y.view(torch.int32))


# -- errors ----------------------------------------------------------------------------------------

def test_without_a_compiler_fused_true_fails_at_construction_with_one_clear_error(
        monkeypatch, capsys):
    monkeypatch.setattr(c_build, "find_compiler", lambda: None)
    p = _params()
    with pytest.raises(c_build.CompilerNotFound, match="compiles the generated step"):
        torch_optimizer("adam")([p], fused=True)
    torch_optimizer("adam")([p]).step()  # the default needs none
    assert main(["crosscheck", "adam", "--fused"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "C compiler" in err and "Traceback" not in err


@HAS_CC
def test_a_compiler_error_is_reported_with_the_compilers_words(fresh_cache, monkeypatch):
    monkeypatch.setattr(fused_module, "c_source", lambda prog: "this is not C;\n")
    with pytest.raises(c_build.KernelBuildError, match="error"):
        FusedKernel(program("adam"))


def test_fused_and_foreach_together_are_refused_as_torch_does():
    p = _params()
    with pytest.raises(RuntimeError) as theirs:
        torch.optim.Adam([p], fused=True, foreach=True)
    with pytest.raises(RuntimeError) as ours:
        torch_optimizer("adam")([p], fused=True, foreach=True)
    assert str(ours.value) == str(theirs.value)


# -- memory and the benchmark rows -----------------------------------------------------------

@HAS_CC
def test_a_fused_step_allocates_no_tensor_memory():
    from optequiv.benchmarks.optimizers import peak_extra_bytes

    p = _params(1000, torch.float32)
    fused = torch_optimizer("adamw")([p], fused=True)
    eager = torch_optimizer("adamw")([_params(1000, torch.float32)])
    fused.step(), eager.step()
    measured = peak_extra_bytes(fused.step)
    if measured is None:
        pytest.skip("this torch's profiler exposes no allocation events")
    assert measured == 0
    assert peak_extra_bytes(eager.step) >= 4000  # negative control: one temporary of p's size


@HAS_CC
def test_optimizer_rows_quick_has_every_key(monkeypatch):
    import optequiv.benchmarks.optimizers as bench

    monkeypatch.setattr(bench, "QUICK_SIZES", (5000,))
    rows = bench.optimizer_rows(quick=True, repeats=2)
    keys = {"case", "device", "ours_ms", "torch_loop_ms", "torch_foreach_ms", "torch_fused_ms",
            "ratio_vs_fused", "ratio_vs_loop", "ratio_vs_fastest", "gbps", "copy_gbps",
            "compile_s", "peak_extra_bytes_ratio_ours", "peak_extra_bytes_ratio_fused"}
    assert [r["case"] for r in rows][:-1] == [f"{c}-5e3-{layout}" for layout in bench.LAYOUTS
                                              for c in bench.CASES]
    for row in rows:
        assert keys <= set(row), keys - set(row)
        assert row["device"] == "cpu" and row["ours_ms"] > 0 and row["gbps"] > 0
        assert row["ours_ms"] == row["ours_fused_ms"]
        if row["torch_loop_ms"] is not None:
            assert row["ratio_vs_loop"] == row["ours_ms"] / row["torch_loop_ms"]
        if row["torch_fused_ms"] is not None:
            assert row["ratio_vs_fused"] == row["ours_ms"] / row["torch_fused_ms"]
    by = {r["case"]: r for r in rows}
    assert by["sgd-5e3-1tensor"]["bytes_per_step"] == 5000 * 4 * 5  # p, g, buf in; p, buf out
    assert by["adam-5e3-1tensor"]["bytes_per_step"] == 5000 * 4 * 7  # p, g, m, v in; p, m, v out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_optimizer_rows_on_cuda_without_cuda_is_a_clear_error():
    from optequiv.benchmarks.optimizers import optimizer_rows

    with pytest.raises(RuntimeError, match="CUDA is not available"):
        optimizer_rows(quick=True, device="cuda")
