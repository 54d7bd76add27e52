"""`optequiv bench [--quick] [--json FILE] [--device cpu|cuda]`: the benchmark as Markdown on
stdout (`optequiv bench > BENCHMARKS.md` is how BENCHMARKS.md is made), rows as JSON on request."""
from __future__ import annotations

import json
import sys

from optequiv.derive.atomic import check_writable, write_atomic
from optequiv.derive.errors import UserError


def run_bench(args) -> int:
    import torch

    from .compiled import compiled_rows
    from .optimizers import optimizer_rows
    from .report import markdown
    from .symbolic import symbolic_rows
    from .throughput import throughput_row
    from .ulp import ulp_rows, ulp_section

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine")
    if args.json is not None:
        check_writable(args.json)  # before minutes of benchmarking, not after
    optimizer = optimizer_rows(quick=args.quick, device=args.device)
    compiled = compiled_rows(quick=args.quick, device=args.device)
    symbolic = symbolic_rows(quick=args.quick)
    throughput = throughput_row(quick=args.quick)
    ulp = ulp_rows(quick=args.quick)
    command = "optequiv " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "optequiv bench"
    print(markdown(optimizer, symbolic, throughput, command, compiled) + ulp_section(ulp))
    if args.json is not None:
        write_atomic(args.json, json.dumps(optimizer + compiled + symbolic + [throughput] + ulp,
                                           indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark generated optimizers and the symbolic engine")
    p.add_argument("--quick", action="store_true", help="small sizes, finishes in under a minute")
    p.add_argument("--json", metavar="FILE", help="also write every row as a JSON list")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the throughput rows run (default cpu)")
    p.set_defaults(run=run_bench, time_limit=False)  # its sizes are ours, and take minutes
