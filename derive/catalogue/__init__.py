"""The catalogue: one module per optimizer family, each holding its entries (derive.catalogue.base
says what an entry is). Adding an optimizer is its module plus its name in MODULES."""
from __future__ import annotations

from importlib import import_module

from ..errors import UserError

MODULES = ("sgd", "adam", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "asgd",
           "rprop", "lion")

ENTRIES = {e.name: e for m in MODULES for e in import_module(f".{m}", __name__).ENTRIES}
NAMES = tuple(ENTRIES)
# optimizers that are not element-wise first-order rules: listed, never modelled by a coordinate
NOT_MODELLED = {
    "adafactor": "torch.optim.Adafactor factors the second moment into row and column "
                 "statistics of a matrix: one coordinate's step reads its whole row and column",
    "muon": "Muon orthogonalises the momentum matrix (Newton-Schulz iterations): every "
            "coordinate's step depends on the whole matrix",
    "lbfgs": "torch.optim.LBFGS builds a quasi-Newton direction from inner products of whole "
             "gradient histories and runs a line search on the loss: not element-wise",
    "sparseadam": "torch.optim.SparseAdam updates only the coordinates a sparse gradient "
                  "touches, so a coordinate's state depends on which others are present",
}


def entry(name: str):
    try:
        return ENTRIES[name]
    except KeyError:
        extra = f" ({NOT_MODELLED[name]}: not modelled)" if name in NOT_MODELLED else ""
        raise UserError(f"unknown optimizer {name!r}{extra}; valid names: "
                        f"{', '.join(NAMES)}") from None


def state_assumptions() -> dict:
    """symbol name -> assumptions, over the whole catalogue (one name has one meaning)."""
    out = {}
    for e in ENTRIES.values():
        for s in e.states:
            out.setdefault(s.name, dict(s.assumptions))
    return out
