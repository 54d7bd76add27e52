"""`optequiv crosscheck SPEC`: the optimizer generated from SPEC against torch.optim, step by step
(and, registered from here, `optequiv identify`: numeric.identify_command).

A plugin of derive's CLI (entry-point group optequiv.commands). This module imports neither
torch nor the harness until the command runs, so `optequiv --help` stays fast and works
without torch. Exit status: 0 every implementation ran every step and agreed, 1 otherwise (a
mismatch, printed with its first step; or a partial comparison: torch raised in one of its
implementations, or has none here; the report gives the steps compared and what torch raised),
2 bad input (one line on stderr, raised as UserError). `--skip IMPL` leaves an implementation out
on purpose; the report says so.
"""
from __future__ import annotations

import argparse

from optequiv.derive.cli import print_json, steps_arg
from optequiv.derive.errors import UserError
from optequiv.derive.spec import parse_spec

from .reference import IMPLEMENTATIONS

DEFAULT_STEPS = 200


def seed_arg(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**63:
        raise argparse.ArgumentTypeError(f"--seed must be a whole number from 0 to 2**63-1, "
                                         f"got {text!r}")
    return int(text)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "crosscheck", help="run the optimizer generated from SPEC against torch.optim",
        description="Run numeric.torch_optimizer(SPEC) and torch.optim's class for SPEC (the "
        "single-tensor loop, foreach, and fused where torch has it) side by side and compare "
        "parameters and state after every step.")
    p.add_argument("spec", metavar="SPEC", help="all values numeric, e.g. "
                   "'adamw(lr=1e-3, weight_decay=0.1)'; omitted ones take torch's defaults")
    p.add_argument("--steps", type=steps_arg(100000), default=DEFAULT_STEPS,
                   help=f"steps to run (default {DEFAULT_STEPS})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                   help="parameter dtype (default float64)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where both optimizers run (default cpu)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the random problem and gradients (default 0)")
    p.add_argument("--fused", action="store_true",
                   help="run the generated optimizer with fused=True (its step compiled from C)")
    p.add_argument("--skip", action="append", default=[], choices=tuple(IMPLEMENTATIONS),
                   metavar="IMPL", help="leave torch's implementation IMPL out on purpose ("
                   f"{', '.join(IMPLEMENTATIONS)}; repeatable). Without it, the exit status is 1 "
                   "unless every implementation ran every step")
    p.add_argument("--json", action="store_true",
                   help="every comparison, its errors in ulp and the tolerance as JSON")
    p.set_defaults(run=run_crosscheck)
    # numeric's other command, through this entry point (optequiv.commands: crosscheck)
    from .identify_command import register as register_identify

    register_identify(subparsers)


def _torch():
    try:
        import torch
    except ImportError:
        raise UserError("crosscheck needs torch: pip install 'optequiv[torch]'") from None
    return torch


def run_crosscheck(args) -> int:
    implementations = tuple(impl for impl in IMPLEMENTATIONS if impl not in args.skip)
    if not implementations:
        raise UserError(f"--skip leaves nothing to compare: give at most {len(IMPLEMENTATIONS) - 1}"
                        f" of {', '.join(IMPLEMENTATIONS)}")
    spec = parse_spec(args.spec)
    spec.hyper(numeric=True)  # a symbolic value is bad input here
    torch = _torch()
    from .reference import torch_reference

    torch_reference(spec)  # a spec torch has no class for is bad input here
    from .harness import require_device

    require_device(args.device, "--device cuda")
    if args.fused:
        from .c_build import CompilerNotFound, require_compiler

        try:
            require_compiler()
        except CompilerNotFound as error:
            raise UserError(f"--fused: {error}") from None
    from .against_torch import crosscheck

    report = crosscheck(args.spec, steps=args.steps, dtype=getattr(torch, args.dtype),
                        device=args.device, seed=args.seed, fused=args.fused,
                        implementations=implementations)
    if args.json:
        print_json(report.to_json())
    else:
        print(report_text(report))
    return 0 if report.passed else 1


def report_text(report) -> str:
    data = report.to_json()
    tol = data["tolerance"]
    generated = "numeric.torch_optimizer" + (" (fused=True)" if report.fused else "")
    lines = [f"crosscheck {report.spec}: {generated} against {report.torch_class}",
             f"{report.dtype} on {report.device}, {report.steps} steps, seed {report.seed}; "
             f"tolerance {tol['rel']:.3g} relative ({tol['eps_units']} eps) per tensor and step"]
    for c in report.comparisons:
        note = "bit for bit" if c.passed and c.max_ulp == 0 else ""
        status = "MISMATCH" if not c.agree else "agree   " if c.complete else "PARTIAL "
        lines.append(f"  {c.reference:<8} {status} {c.steps}/{c.steps_requested} steps  max "
                     f"|error| {c.max_abs_error:.3g}  relative {c.max_rel_error:.3g}  max "
                     f"{c.max_ulp:.0f} ulp  {note}".rstrip())
        if c.raised:
            lines.append(f"           torch raised at step {c.raised['step']}: "
                         f"{c.raised['type']}: {c.raised['message']}; not compared after it")
        if not c.agree:
            lines.append(f"           first mismatch: {c.first_mismatch}")
    for impl, why in report.skipped.items():
        lines.append(f"  {impl:<8} NOT COMPARED: torch has none here ({why})")
    for impl in report.left_out:
        lines.append(f"  {impl:<8} left out on request (--skip {impl})")
    for impl in report.not_in_torch:
        lines.append(f"  {impl:<8} not compared: {report.torch_class} has no {impl} implementation")
    lines.append(_result(report))
    return "\n".join(lines)


def _result(report) -> str:
    partial = [f"{c.reference} compared on {c.steps} of {c.steps_requested} steps (torch raised "
               f"{c.raised['type']} at step {c.raised['step']})"
               for c in report.comparisons if c.raised] + \
        [f"{impl} not compared (torch has none here)" for impl in report.skipped]
    left_out = f" ({', '.join(report.left_out)} left out on request)" if report.left_out else ""
    if not report.agree:
        worst = report.first_failing
        return (f"result: MISMATCH, first at {worst.first_mismatch} (against {worst.reference})"
                + (f"; also incomplete: {'; '.join(partial)}" if partial else "") + left_out)
    if partial:
        skips = [c.reference for c in report.comparisons if c.raised] + list(report.skipped)
        return (f"result: INCOMPLETE: {'; '.join(partial)}; the steps compared agree"
                f"{left_out}. {' '.join(f'--skip {impl}' for impl in skips)} leaves "
                f"{'it' if len(skips) == 1 else 'them'} out on purpose")
    return "result: agree" + left_out
