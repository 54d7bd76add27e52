"""The `optequiv` command line.

derive owns the framework and the symbolic commands (compare, unroll, list). Packages above it
(proofs, numeric, benchmarks) add their commands as plugins through the entry-point group
`optequiv.commands`, so this core never imports them: each entry point is a
`register(subparsers)` function that adds one sub-command whose `run(args)` returns an exit code.

Contract: bad input is one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

from fractions import Fraction

import argparse
import errno
import json
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version

from . import symbols as Y
from .budget import LIMIT_ENV, OutOfTime, command_limit, within
from .compare import DEFAULT_STEPS, compare
from .errors import UserError, shown
from .explain import compare_text, unroll_latex, unroll_markdown, unroll_text
from .catalogue import ENTRIES, NOT_MODELLED
from .catalogue.base import MISSING, MISSING_NOTE
from .spec import parse_spec
from .unroll import unroll

PLUGIN_GROUP = "optequiv.commands"
FROM_HELP = ("start: torch's initial state (t = 1 on the first step, buffers created lazily; "
             "default); state: a general mid-run state theta_0, buf_0, m_0, v_0, ...")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line and exit status 2 (argparse prints usage as well)."""

    def error(self, message):
        command = self.prog.removeprefix("optequiv").strip()  # main prints "optequiv: " itself
        raise UserError(f"{command}: {message}" if command else message)


def steps_arg(limit: int):
    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= limit:
            raise argparse.ArgumentTypeError(f"--steps must be a whole number from 1 to {limit}, "
                                             f"got {text!r}")
        return int(text)
    return parse


def schedule_arg(text: str) -> tuple:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if not _IDENT.match(name) or Y.RESERVED.match(name):
            raise argparse.ArgumentTypeError(f"--schedule takes hyperparameter names separated by "
                                             f"commas (e.g. eta or lr,k), got {name!r}")
    return tuple(Y.hyper(n) for n in names)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


# -- compare -------------------------------------------------------------------------------------

def run_compare(args) -> int:
    a, b = parse_spec(args.a), parse_spec(args.b)
    known = a.symbols() | b.symbols()
    missing = [s for s in args.schedule if s not in known]
    if missing:
        raise UserError(f"--schedule names {', '.join(map(str, missing))}, which neither spec "
                        f"uses; symbols in the specs: {', '.join(map(str, Y.by_name(known)))}")
    Y.check_stepped_names(args.schedule, known)  # the engine names step k's eta eta_k
    result = compare(a, b, steps=args.steps, start=args.start, schedule=args.schedule)
    if args.json:
        print_json(result.to_json())
    elif args.format == "text":
        print(compare_text(result))
    else:
        from .narrate import comparison_derivation
        from .printers import FORMATS

        print(FORMATS[args.format](comparison_derivation(result)))
    return EXIT_STATUS[result.verdict]


# as cmp and diff: 0 the same (proven), 1 different (refuted), 2 trouble (bad input); 3 neither
# established (undecided, or only supported at random points)
EXIT_STATUS = {"proven": 0, "refuted": 1, "supported": 3, "undecided": 3}


# -- unroll --------------------------------------------------------------------------------------

def _scheduled_spec(args):
    """SPEC, refused where --schedule names a symbol it does not use."""
    spec = parse_spec(args.spec)
    missing = [s for s in args.schedule if s not in spec.symbols()]
    if missing:
        raise UserError(f"--schedule names {', '.join(map(str, missing))}, which the spec does "
                        "not use")
    return spec


def run_unroll(args) -> int:
    spec = _scheduled_spec(args)
    result = unroll(spec, args.steps, start=args.start, loop=args.loop, schedule=args.schedule)
    print({"latex": unroll_latex, "markdown": unroll_markdown, "text": unroll_text}[args.format](
        result))
    return 0


# -- translate -----------------------------------------------------------------------------------

def run_translate(args) -> int:
    from .translate import translate

    spec = _scheduled_spec(args)
    result = translate(spec, args.to, steps=args.steps, schedule=args.schedule)
    if args.json:
        print_json(result.to_json())
    elif result.exact:
        print(result.call)
        for key, value in result.mapping.items():
            print(f"  {key} = {value}")
        if result.valid_when:
            print(f"  valid when {', '.join(map(str, result.valid_when))}")
        for key, (mine, theirs) in result.numeric_only.items():
            print(f"  exact while every parameter has a gradient; for one without: {key}={mine} "
                  f"here, {key}={theirs} there")
    elif result.call is None:
        print(f"no call of {args.to} could be established: {result.reason}")
    else:
        print(f"no call of {args.to} reproduces {result.spec.call or result.spec} exactly; "
              f"nearest: {result.call}")
        print(f"  first divergent step: {result.first_divergent_step}")
        print(f"  difference (theta of the nearest minus theta of the spec): {result.difference}")
    return 0 if result.exact else 1 if result.call else 3


# -- list ----------------------------------------------------------------------------------------

def typed(default) -> str:
    """A default as the user would type it in a spec: (0.9, 0.999), false, 1e-3."""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple):
        return "(" + ", ".join(default) + ")"
    return str(default)


def _symbolic_default(h) -> str:
    """What a symbolic command puts for an omitted key (derive.spec.Spec.hyper): a symbol where
    torch's default is non-zero, else 0 (the feature off)."""
    names = [s.name if Fraction(s.default) != 0 else "0" for s in h.scalars]
    if h.pair:
        return "(" + ", ".join(names) + ")"
    return names[0] if names[0] != "0" else "0 (off)"


def catalogue() -> dict:
    out = {}
    for name, e in ENTRIES.items():
        keys = {}
        choices = e.all_choices
        for key, default in e.defaults().items():
            own = key in choices or (key in e.numbers and not e.hyper(key).torch)
            info = {"torch_default": default if not isinstance(default, tuple) else list(default),
                    "typed": typed(default), "torch_key": not own}
            if key in e.numbers:
                info["symbolic_default"] = _symbolic_default(e.hyper(key))
                if e.hyper(key).follows:  # a numeric command's default: the spec's lr
                    info["typed"] = e.hyper(key).follows
            if key in choices:
                info["choices"] = dict(choices[key])
            if key in MISSING:
                info["note"] = MISSING_NOTE
            keys[key] = info
        out[name] = {"modelled": True, "torch_class": e.torch_class or "none",
                     "reference": e.reference, "keys": keys,
                     "state": {s.key: {"symbol": s.name, "latex": s.latex, "meaning": s.meaning}
                               for s in e.states}}
    for name, reason in NOT_MODELLED.items():
        out[name] = {"modelled": False, "reason": reason}
    return out


def run_list(args) -> int:
    data = catalogue()
    if args.json:
        print_json(data)
        return 0
    for name, info in data.items():
        if not info["modelled"]:
            continue
        print(f"{name}  ({info['torch_class']} semantics)" if info["torch_class"] != "none"
              else f"{name}  (no torch.optim class; reference: {info['reference']})")
        own = {k: e for k, e in info["keys"].items() if not e["torch_key"]}
        print(f"  {'torch' + chr(39) + 's keys':<27}default (as typed in a spec)")
        for key, entry in info["keys"].items():
            if entry["torch_key"]:
                line = f"    {key:<24} {entry['typed']}"
                if "symbolic_default" in entry:
                    line += f"{'':<{max(1, 14 - len(entry['typed']))}}symbolic commands: " \
                            f"{entry['symbolic_default']}"
                print(line)
        print("  optequiv's own keys (not torch.optim arguments)")
        for key, entry in own.items():
            line = f"    {key:<24} {entry['typed']}"
            if "symbolic_default" in entry:
                line += f"{'':<{max(1, 14 - len(entry['typed']))}}symbolic commands: " \
                        f"{entry['symbolic_default']}"
            print(line)
            choices = entry.get("choices", {})
            width = max([12] + [len(c) for c in choices])
            for choice, meaning in choices.items():
                print(f"      {choice:<{width}} {meaning}")
            if "note" in entry:
                print(f"      ({entry['note']})")
        print("  state (torch's key: symbol)  " + ", ".join(
            f"{key}: {s['symbol']}" for key, s in info["state"].items()))
    print("not modelled (not element-wise first-order rules; one coordinate cannot stand for them)")
    for name, info in data.items():
        if not info["modelled"]:
            print(f"  {name:<12} {info['reason']}")
    return 0


# -- the parser ----------------------------------------------------------------------------------

def build_parser() -> Parser:
    parser = Parser(prog="optequiv", description="Symbolic derivation and verification of "
                    "optimizer update rules (L2 versus decoupled weight decay, and more).")
    parser.add_argument("--version", action="version", version=f"optequiv {_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("compare", help="decide whether two specs trace the same trajectory; exit "
                       "status 0 equivalent (proven), 1 refuted, 2 bad input, 3 undecided")
    p.add_argument("a", metavar="A", help="spec, e.g. 'sgd(lr=eta, weight_decay=lam)'")
    p.add_argument("b", metavar="B", help="spec, e.g. 'sgd(lr=eta, weight_decay=k, decay=independent)'")
    p.add_argument("--steps", type=steps_arg(12), default=DEFAULT_STEPS,
                   help=f"largest step to look for a divergence (default {DEFAULT_STEPS})")
    p.add_argument("--from", dest="start", choices=("start", "state"), default="start",
                   help=FROM_HELP)
    p.add_argument("--schedule", type=schedule_arg, default=(),
                   help="symbols that change every step (per-step learning rate), e.g. eta")
    p.add_argument("--format", choices=("text", "latex", "markdown"), default="text",
                   help="text (default), or the side-by-side derivation as a LaTeX section or "
                        "a Markdown page for documentation")
    p.add_argument("--json", action="store_true",
                   help="the verdict, mapping, conditions, certificate and counterexample as JSON")
    p.set_defaults(run=run_compare)

    p = sub.add_parser("unroll", help="expand a spec's recurrence for k steps")
    p.add_argument("spec", metavar="SPEC", help="spec, e.g. 'adam(weight_decay=lam)'")
    p.add_argument("--steps", type=steps_arg(64), required=True,
                   help="how many steps to expand (1 to 64)")
    p.add_argument("--from", dest="start", choices=("start", "state"), default="start",
                   help=FROM_HELP)
    p.add_argument("--loop", choices=("open", "closed"), default="open",
                   help="open: gradients g_k are free symbols (default); closed: "
                        "g_k = grad_f(theta_{k-1}) for an unknown loss f")
    p.add_argument("--schedule", type=schedule_arg, default=(),
                   help="symbols that change every step, written eta_k at step k")
    p.add_argument("--format", choices=("text", "latex", "markdown"), default="text",
                   help="text (default), a LaTeX align* block, or Markdown with display math")
    p.set_defaults(run=run_unroll)

    p = sub.add_parser("translate", help="the call in another framework that reproduces SPEC "
                       "exactly (exit 0), or the nearest one (exit 1); 3 undecided")
    p.add_argument("spec", metavar="SPEC", help="spec or framework call, e.g. "
                   "'tfa.AdamW(weight_decay=w, learning_rate=eta)'")
    p.add_argument("--to", required=True, metavar="FRAMEWORK",
                   help="target framework: " + ", ".join(_frameworks()))
    p.add_argument("--steps", type=steps_arg(12), default=DEFAULT_STEPS,
                   help=f"largest step to look for a divergence (default {DEFAULT_STEPS})")
    p.add_argument("--schedule", type=schedule_arg, default=(),
                   help="symbols of SPEC that change every step (an lr schedule), e.g. eta: "
                        "the call must reproduce SPEC under any schedule")
    p.add_argument("--json", action="store_true",
                   help="exact, call, mapping, first_divergent_step, difference as JSON")
    p.set_defaults(run=run_translate)

    p = sub.add_parser("list", help="optimizer names, keys and defaults")
    p.add_argument("--json", action="store_true", help="the same catalogue as JSON")
    p.set_defaults(run=run_list)

    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            register = plugin.load()
        except ImportError as error:  # e.g. numeric without torch: the rest still works
            _unavailable(sub, plugin.name, error)
            continue
        register(sub)
    return parser


def _frameworks() -> tuple:
    from .dialects import FRAMEWORKS

    return tuple(FRAMEWORKS)


def _version() -> str:
    try:
        return version("optequiv")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _unavailable(sub, name: str, error: Exception) -> None:
    def run(args):
        raise UserError(f"the {name} commands are unavailable: {error} "
                        "(pip install 'optequiv[torch]' for the numeric ones)")
    p = sub.add_parser(name, help=f"(unavailable: {error})")
    p.add_argument("rest", nargs="*", help="(the command cannot run here)")
    p.set_defaults(run=run)


def _quiet_stdout() -> None:
    """stdout to devnull, so that the interpreter's flush at exit has nothing left to fail on."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    except OSError:
        pass
    if sys.stdout is not None:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass


def _stdout_failing(error: OSError) -> bool:
    """True when standard output cannot take what was printed (a full disk, /dev/full, EIO):
    write errors that file output (derive.atomic) would have turned into UserError already."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG):
        return True
    try:
        sys.stdout.flush()
        return False
    except (OSError, ValueError):
        return True


def main(argv=None) -> int:
    if sys.stdout is None:  # started with stdout closed (`optequiv list >&-`)
        print("optequiv: standard output is closed; nothing can be printed", file=sys.stderr)
        return 2
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            commands = parser._subparsers._group_actions[0].choices
            raise UserError(f"give a command: {', '.join(commands)} (optequiv --help says more)")
        limit = command_limit() if getattr(args, "time_limit", True) else None
        try:
            if limit is None:
                code = int(args.run(args) or 0)
            else:
                with within(limit):
                    code = int(args.run(args) or 0)
        except OutOfTime:
            raise UserError(f"gave up after {limit:g} s (${LIMIT_ENV}): this input is too large "
                            "to decide in time; try fewer --steps or a smaller spec") from None
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader stopped reading (`optequiv list | head`): end quietly with the status a
        # shell gives a tool killed by SIGPIPE; stdout goes to devnull so the exit flush is silent
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except UserError as error:
        print(f"optequiv: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optequiv: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        if not _stdout_failing(error):
            return _internal(error)
        _quiet_stdout()
        print(f"optequiv: cannot write to standard output: {error.strerror or error}",
              file=sys.stderr)
        return 2
    except Exception as error:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("OPTEQUIV_DEBUG"):
            raise
        return _internal(error)


def _internal(error: Exception) -> int:
    if os.environ.get("OPTEQUIV_DEBUG"):
        raise error
    print(f"optequiv: internal error: {type(error).__name__}: {shown(error)} "
          "(set OPTEQUIV_DEBUG=1 for a traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
