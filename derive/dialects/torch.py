"""torch.optim's own classes as a framework (`torch.optim.AdamW(lr=1e-3)`): read from the
catalogue, whose entries already hold torch's keywords, order and defaults; this is the
target `translate --to torch` searches, and a spec may name a class so too."""
from __future__ import annotations

from .. import catalogue
from .base import Dialect, Framework, Keyword


def _dialect(entry) -> Dialect:
    torch_keys = [h.key for h in entry.hypers if h.torch]
    order = [k for k in entry.positional if k in torch_keys or k in entry.flags]
    order += [k for k in entry.keyword if k in entry.flags and k not in order]
    defaults = entry.defaults()
    keywords = tuple(Keyword(k, defaults[k]) for k in order)
    return Dialect(entry.class_name, keywords, lambda values: (entry.name, dict(values)),
                   source=entry.reference, positional=len(entry.positional),
                   doc=f"torch's {entry.class_name}")


FRAMEWORK = Framework(
    "torch", ("torch.optim", "torch"),
    tuple(_dialect(e) for e in catalogue.ENTRIES.values() if e.torch_class),
    source="torch 2.13.0 (the catalogue)", installed="torch")
