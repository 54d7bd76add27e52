"""`optequiv plot -o DIR`: the weight-decay figures as PNG and SVG (a plugin of derive's CLI,
entry-point group optequiv.commands). matplotlib is imported when the command runs, so that
`optequiv --help` works without the `optequiv[plot]` extra."""
from __future__ import annotations


from optequiv.derive.atomic import output_folder
from optequiv.derive.errors import UserError


def run_plot(args) -> int:
    try:
        from .render import render_all
    except ImportError as error:
        raise UserError(f"plot needs matplotlib ({error}): pip install 'optequiv[plot]'") from None
    out = output_folder(args.output)
    for figure in render_all(out):
        print(figure.png)
        print(figure.svg)
    return 0


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw what weight decay does: trajectories, per-coordinate "
                       "decay, heavy-ball roots (PNG and SVG; needs optequiv[plot])")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for the PNG and SVG files (created if missing)")
    p.set_defaults(run=run_plot)


def figures(out) -> list:
    """The documents' figures (entry-point group optequiv.figures): rendered into `out`."""
    from .render import render_all

    return render_all(out)
