"""bitsandbytes 0.50.2 (bitsandbytes/optim/adamw.py; csrc/kernels.cu per REFERENCE.md).

The CUDA kernel takes the Adam step, then p *= (1 - lr*wd): decay after the step (decay=after),
which is what `bnb.AdamW` models. Its Python backends (backends/default/ops.py, read here)
decay before, p *= (1 - lr*wd), then step with eps*sqrt(1 - b2^t) on the raw sqrt(v), which is
torch.optim.AdamW exactly (bitsandbytes #2010). optim_bits=32 is the exact optimizer modelled.
"""
from __future__ import annotations

from ..errors import UserError
from .base import Dialect, Framework, Keyword

SOURCE = "bitsandbytes 0.50.2 bitsandbytes/optim/adamw.py; CUDA kernel per REFERENCE.md"


def _adamw(v):
    if v["optim_bits"] != 32:
        raise UserError("bitsandbytes with optim_bits=8 quantises the state: only optim_bits=32 "
                        "is an exact rule")
    return "adamw", {"lr": v["lr"], "betas": v["betas"], "eps": v["eps"],
                     "weight_decay": v["weight_decay"], "amsgrad": v["amsgrad"],
                     "decay": "after"}


DIALECTS = (Dialect(
    "AdamW", (Keyword("lr", "1e-3"), Keyword("betas", ("0.9", "0.999")), Keyword("eps", "1e-8"),
              Keyword("weight_decay", "1e-2"), Keyword("amsgrad", False),
              Keyword("optim_bits", "32")),
    _adamw, SOURCE, doc="AdamW as the CUDA kernel runs it: decay after the step"),)

FRAMEWORK = Framework("bnb", ("bnb", "bnb.optim", "bitsandbytes", "bitsandbytes.optim"),
                      DIALECTS, source="bitsandbytes 0.50.2", installed="bitsandbytes")
