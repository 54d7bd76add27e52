"""The other side of an optimizer row: torch's implementations of the entry's class, or, for an
entry torch has no class for, an equivalent written here with torch tensor operations.

    torch_sides(spec, make_params) -> ({implementation name: optimizer or None}, label)

With a torch class: torch_loop (foreach=False), torch_foreach and torch_fused, each where the
entry lists it (None otherwise, or where torch refuses it here). Without one: the optimizer
of OPS_REFERENCES (loop and foreach forms, as the usual third-party packages write them), or,
for an entry with none, nothing: the row then compares with our own eager step and says so.
These are written from the entry's published algorithm, not generated from derive's rule, so
that they time what a user would otherwise run.
"""
from __future__ import annotations

import torch


class TorchOpsLion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, Alg. 1) in torch operations, as lion-pytorch writes it:
    theta <- theta*(1 - lr*wd) - lr*sign(beta1*m + (1-beta1)*g); m <- beta2*m + (1-beta2)*g.
    foreach=True: the same with torch._foreach_* over the group's tensors."""

    def __init__(self, params, lr, beta1, beta2, weight_decay, foreach=False, **_):
        super().__init__(params, dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay,
                                      foreach=foreach))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, wd, (b1, b2) = group["lr"], group["weight_decay"], group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            ms = [self.state[p].setdefault("exp_avg", torch.zeros_like(p)) for p in params]
            if group["foreach"]:
                torch._foreach_mul_(params, 1 - lr * wd)
                update = torch._foreach_lerp(ms, grads, 1 - b1)
                torch._foreach_sign_(update)
                torch._foreach_add_(params, update, alpha=-lr)
                torch._foreach_lerp_(ms, grads, 1 - b2)
                continue
            for p, g, m in zip(params, grads, ms):
                p.mul_(1 - lr * wd)
                p.add_(m.lerp(g, 1 - b1).sign_(), alpha=-lr)
                m.lerp_(g, 1 - b2)


# entries without a torch class -> a class taking the spec's canonical hyperparameters
OPS_REFERENCES = {"lion": TorchOpsLion}


def torch_sides(spec, make_params) -> tuple:
    from optequiv.numeric.reference import IMPLEMENTATIONS, torch_reference

    entry = spec.entry
    opts = {}
    if entry.torch_class is not None:
        cls, kwargs = torch_reference(spec)
        for name in ("loop", "foreach", "fused"):
            try:
                opts[f"torch_{name}"] = cls(make_params(), **kwargs, **IMPLEMENTATIONS[name]) \
                    if name in entry.implementations else None
            except (RuntimeError, ValueError):
                opts[f"torch_{name}"] = None  # torch has no such implementation here
        return opts, entry.torch_class
    ops = OPS_REFERENCES.get(entry.name)
    if ops is None:
        return {}, "none (no torch class, no torch-ops reference): ours eager"
    h = {k: float(v) for k, v in spec.hyper(numeric=True).items()}
    for name, foreach in (("loop", False), ("foreach", True)):
        opts[f"torch_{name}"] = ops(make_params(), **h, foreach=foreach)
    opts["torch_fused"] = None
    return opts, f"torch ops ({ops.__name__} in benchmarks/references.py: no torch class)"
