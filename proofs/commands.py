"""The proofs commands for the optequiv CLI (entry points in pyproject): prove, docs, check."""
from __future__ import annotations

import json
from pathlib import Path

from optequiv.derive.errors import UserError, shown
from optequiv.derive.printers import FORMATS, to_json

from .claims import check_file
from .documents import write_documents
from .registry import get, names, prove_all, theorems


def run_prove(args) -> int:
    if bool(args.name) == bool(args.all):
        raise UserError("prove: give one theorem NAME or --all; theorems: " + ", ".join(names()))
    chosen = [t.name for t in theorems()] if args.all else [get(args.name).name]
    derivations = prove_all(chosen)
    if args.json:
        data = [to_json(d) for d in derivations]
        print(json.dumps(data if args.all else data[0], indent=2))
    else:
        print("\n\n".join(FORMATS[args.format](d) for d in derivations))
    return 0


def run_docs(args) -> int:
    old_pdf = (Path(args.output) / "optequiv.pdf").is_file()
    written = write_documents(args.output, pdf=not args.no_pdf)
    for path in written:
        print(shown(path))
    if not any(Path(p).name == "optequiv.pdf" for p in written):
        why = "--no-pdf" if args.no_pdf else "pdflatex is not on the PATH"
        removed = "; the earlier optequiv.pdf, which no longer matched, was removed" if old_pdf else ""
        print(f"note: {why}: optequiv.pdf was not built{removed}")
    return 0


def run_check(args) -> int:
    results = check_file(args.file)
    passed = all(r.agrees for r in results)
    if args.json:
        print(json.dumps({"file": args.file, "passed": passed,
                          "claims": [r.to_json() for r in results]}, indent=2))
        return 0 if passed else 1
    for r in results:
        mark = "ok  " if r.agrees else "FAIL"
        note = " (numerically supported, no symbolic proof)" if r.verdict == "supported" else ""
        print(f"{mark} {shown(r.claim.name)}: {r.verdict}{note}, expected {r.claim.expect}")
        if r.counterexample and not r.agrees or (r.counterexample and r.claim.expect == "fails"):
            ce = r.counterexample
            point = ", ".join(f"{k} = {v}" for k, v in ce["point"].items())
            print(f"     at {point}: model {ce['model_decimal']}, claim {ce['claim_decimal']}")
    print(f"{sum(r.agrees for r in results)} of {len(results)} claims as expected")
    return 0 if passed else 1


def register(sub) -> None:
    p = sub.add_parser("prove", help="prove a theorem of the catalogue (or --all)")
    p.add_argument("name", nargs="?", metavar="NAME", help="one of: " + ", ".join(names()))
    p.add_argument("--all", action="store_true", help="every theorem of the catalogue, in order")
    p.add_argument("--format", choices=tuple(FORMATS), default="text",
                   help="text (default), a LaTeX section per theorem, or Markdown")
    p.add_argument("--json", action="store_true",
                   help="name, claim, specs, verdict and every step as JSON")
    p.set_defaults(run=run_prove)

    p = sub.add_parser("docs", help="write LaTeX, Markdown (and PDF) documents of the catalogue")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for optequiv.tex, optequiv.md, one .tex per theorem, the PDF "
                        "and the figures (created if missing)")
    p.add_argument("--no-pdf", action="store_true", help="skip pdflatex even when present")
    p.set_defaults(run=run_docs)

    p = sub.add_parser("check", help="check documented formulas (a claims TOML file)")
    p.add_argument("file", metavar="FILE.toml",
                   help="a claims file of [[claim]] tables (format: README, 'Claims files')")
    p.add_argument("--json", action="store_true",
                   help="each claim's verdict, model value and counterexample as JSON")
    p.set_defaults(run=run_check)
