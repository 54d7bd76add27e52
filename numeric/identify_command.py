"""`optequiv identify MODULE:ATTR`: what does this optimizer class do? (numeric.identify)

The class is imported by name (importlib; MODULE:ATTR is split by hand, never evaluated) and
built as `ATTR(params, **kwargs)` with `--kwargs` (JSON). Exit status: 0 something matches,
1 nothing does (the nearest spec is printed), 2 bad input: one line on stderr, never a
traceback (a module that cannot be imported, an attribute it lacks, JSON that is not an object,
a class that raises in its constructor or its step).
"""
from __future__ import annotations

import json
import os
import re
import sys

from optequiv.derive.cli import print_json
from optequiv.derive.errors import UserError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def register(subparsers) -> None:
    from optequiv.derive.cli import steps_arg

    from .commands import seed_arg

    p = subparsers.add_parser(
        "identify", help="name the specs an optimizer class implements, or the nearest one",
        description="Run the optimizer class MODULE:ATTR on designed probes, fit every "
        "catalogue entry and its variants to what it did, and verify each fit with "
        "numeric.testing.assert_matches_spec. Prints the matching specs, or the nearest one, "
        "its first mismatch and the known axis the difference points along.")
    p.add_argument("target", metavar="MODULE:ATTR",
                   help="the class to import, e.g. torch.optim:AdamW or mypkg.optim:MyAdam")
    p.add_argument("--kwargs", default="{}", metavar="JSON",
                   help='keyword arguments of its constructor, e.g. \'{"lr": 3e-4}\'')
    p.add_argument("--hyper", default=None, metavar="JSON",
                   help="values you know, in torch's names, e.g. '{\"betas\": [0.9, 0.95]}'; "
                        "the rest are fitted")
    p.add_argument("--steps", type=steps_arg(1000), default=20,
                   help="probe and check steps (default 20)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the probes and the check")
    p.add_argument("--json", action="store_true",
                   help="JSON with keys matches (list of specs) and nearest (object or null)")
    p.set_defaults(run=run_identify)


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{flag}: not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag}: expected a JSON object such as {{\"lr\": 0.001}}, got "
                        f"{type(value).__name__}")
    return {k: _tuples(v) for k, v in value.items()}


def _tuples(value):
    """JSON arrays as tuples: torch's pairs (betas) are tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_class(target: str):
    """MODULE:ATTR -> the object, by importlib and getattr (ATTR may be dotted)."""
    module_name, colon, attr = target.partition(":")
    if not colon or not _DOTTED.match(module_name) or not _DOTTED.match(attr):
        raise UserError(f"expected MODULE:ATTR such as torch.optim:AdamW, got {target!r}")
    import importlib

    if "" not in sys.path and os.getcwd() not in sys.path:  # as `python -m` imports
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise UserError(f"cannot import {module_name}: {error}") from None
    except Exception as error:  # noqa: BLE001 - the user's module raised while importing
        raise UserError(f"importing {module_name} raised {type(error).__name__}: "
                        f"{_one_line(error)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"{target} is not a class or callable (it is a "
                        f"{type(obj).__name__})")
    return obj


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


def run_identify(args) -> int:
    kwargs = _json_object(args.kwargs, "--kwargs")
    hyper = None if args.hyper is None else _json_object(args.hyper, "--hyper")
    cls = load_class(args.target)
    import torch

    from .identify import identify

    def factory(params):
        return cls(params, **kwargs)

    try:
        factory([torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))])
    except Exception as error:  # noqa: BLE001 - the user's constructor refused
        raise UserError(f"{args.target}(params, **{json.dumps(kwargs)}) raised "
                        f"{type(error).__name__}: {_one_line(error)}") from None
    try:
        result = identify(factory, hyper=hyper, steps=args.steps, seed=args.seed)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's step raised on the probes
        notes = " ".join(getattr(error, "__notes__", []))
        raise UserError(f"{args.target} raised {type(error).__name__}: {_one_line(error)} "
                        f"{notes}".strip()) from None
    if args.json:
        print_json(result.to_json())
    else:
        print(result)
    return 0 if result.matches else 1


__all__ = ["register", "load_class"]
