"""How far apart two tensors are, and how far is too far, in units of the dtype's eps.

- abs error: max |a - b| over the finite entries;
- scale: max(|a|, |b|) over the finite entries (the harness keeps the largest scale a tensor has
  had during the run);
- rel error: abs error / scale. Elementwise relative error is ill-conditioned where a value
  passes near 0 by cancellation (m and buf do, a parameter may): the error there is a few ulp of
  the magnitudes that cancelled, not of the small result;
- ulp: the largest elementwise distance in representable numbers of the dtype (0: bit for bit;
  large counts at entries near 0 are expected for any two implementations that round apart).
NaN and inf must sit in the same places (inf with the same sign) in both tensors.

A comparison passes when rel error <= eps_units * eps(dtype) and the non-finite entries agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# float64: 4096 eps = 9.1e-13, the "about 1e-12 relative over 200 steps". float32: 256
# eps = 3.1e-5. On the CPU the generated optimizer is bit-identical to torch's loop and foreach;
# torch's fused kernels round apart by a few ulp a step: at most 11 eps (float32) and 16 eps
# (float64) over 200 steps, every flag combination and 3 seeds. The bounds leave room for other
# kernels (CUDA) without letting a wrong rule through (planted bugs are off by 1e-4 or more).
EPS_UNITS = {torch.float64: 4096, torch.float32: 256, torch.float16: 64, torch.bfloat16: 64}
_INT = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
        torch.bfloat16: torch.int16}


def tolerance(dtype) -> float:
    """The largest normwise relative difference accepted for `dtype`."""
    return EPS_UNITS[dtype] * torch.finfo(dtype).eps


@dataclass(frozen=True)
class Difference:
    abs_error: float
    scale: float
    ulp: float
    nonfinite_differ: bool  # NaN or inf in different places

    def rel_error(self, scale: float | None = None) -> float:
        scale = max(self.scale, scale or 0.0)
        return self.abs_error / scale if scale > 0 else 0.0


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise count of representable numbers between a and b (same dtype), as float64."""
    bits = _INT[a.dtype]
    mask = torch.iinfo(bits).max
    ia, ib = a.view(bits).to(torch.int64), b.view(bits).to(torch.int64)
    ma, mb = ia & mask, ib & mask  # magnitudes; the sign bit is apart
    same = (ia < 0) == (ib < 0)
    # same sign: magnitudes are ordered like the values; opposite signs: distance through 0
    return torch.where(same, (ma - mb).abs().double(), ma.double() + mb.double())


def difference(a: torch.Tensor, b: torch.Tensor) -> Difference:
    a, b = a.detach(), b.detach()
    if a.dtype == b.dtype and torch.equal(a, b):  # bit for bit (the common case): cheap
        return Difference(0.0, float(a.abs().max()) if a.numel() else 0.0, 0.0, False)
    if a.dtype != b.dtype or not a.is_floating_point():
        a, b = a.double(), b.double()
    finite = torch.isfinite(a) & torch.isfinite(b)
    nonfinite_differ = bool(((torch.isnan(a) != torch.isnan(b)) |
                             (~finite & ~(torch.isnan(a) & torch.isnan(b)) & (a != b))).any())
    if not bool(finite.any()):
        return Difference(0.0, 0.0, 0.0, nonfinite_differ)
    fa, fb = a[finite], b[finite]
    err = float((fa.double() - fb.double()).abs().max())
    scale = max(float(fa.abs().max()), float(fb.abs().max()))
    ulp = float(ulp_distance(fa, fb).max())
    return Difference(err, scale, ulp, nonfinite_differ)
