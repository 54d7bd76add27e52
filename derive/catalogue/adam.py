"""torch.optim.Adam and torch.optim.AdamW (torch 2.13 adam.py, adamw.py): bias-corrected
moments, eps outside the square root, AMSGrad's running max of the raw second moment.

One family: AdamW is Adam whose decay is decoupled (torch 2.13's AdamW is Adam with
decoupled_weight_decay=True), with its own defaults (weight_decay=1e-2).

Other frameworks' Adams differ from torch's along four axes, each a key whose first value is
torch's (REFERENCE.md's table of conventions):
  eps_added_to     sqrt_v_hat: m_hat/(sqrt(v_hat) + eps) (torch, optax) | sqrt_v:
                   lr*sqrt(1 - beta2^t)/(1 - beta1^t) * m/(sqrt(v) + eps) (Keras 3, Hugging
                   Face 4.x AdamW, TF legacy, MXNet): eps is added before the correction;
  eps_root         added inside the square root, to the moment eps is added to the root of:
                   m_hat/(sqrt(v_hat + eps_root) + eps) (optax); under sqrt_v, sqrt(v + eps_root);
  bias_correction  on | off: lr*m/(sqrt(v) + eps) (Hugging Face AdamW correct_bias=False);
                   off, v_hat is v, so eps_added_to and amsgrad_max_of change nothing;
  amsgrad_max_of   v: the running max of the raw v, divided by 1 - beta2^t (torch) | v_hat: the
                   running max of v/(1 - beta2^t) itself (optax), held in max_exp_avg_sq.
A value that changes nothing in a spec (amsgrad_max_of without amsgrad) gives the same stages,
so every layer sees the same optimizer: one Stage per distinct rule, never two spellings.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import sympy as sp

from .. import stages as S
from .base import ADAM_DECAYS, COUNT, DECAYS, NONNEGATIVE, REAL, Entry, Hyper, Scalar, State, on
from .common import MAXIMIZE, betas, eps, lr, weight_decay

STEP = State("t", "step", COUNT, "t", "t", "the step count", scalar=True)
STATES = (STEP,
          State("m", "exp_avg", REAL, "m", "m", "Adam's first moment (EMA of gradients)"),
          State("v", "exp_avg_sq", NONNEGATIVE, "v", "v",
                "Adam's second moment (EMA of squared gradients)"),
          State("vmax", "max_exp_avg_sq", NONNEGATIVE, r"v^{\max}", "vᵐᵃˣ",
                "AMSGrad's running maximum of $v$ (of $v_hat$ under `amsgrad_max_of=v_hat`)"))
SPARSE = "Adam does not support sparse gradients, please consider SparseAdam instead"

EPS_ADDED_TO = {
    "sqrt_v_hat": "eps added to sqrt(v_hat), after the bias correction (torch, optax): "
                  "m_hat/(sqrt(v_hat) + eps)",
    "sqrt_v": "eps added to sqrt(v), before the bias correction (Keras 3, Hugging Face 4.x "
              "AdamW, TF legacy, MXNet): lr*sqrt(1 - beta2^t)/(1 - beta1^t) * m/(sqrt(v) + eps)",
}
BIAS_CORRECTION = {
    "on": "moments divided by 1 - beta^t (torch)",
    "off": "no bias correction (Hugging Face AdamW correct_bias=False): lr*m/(sqrt(v) + eps)",
}
AMSGRAD_MAX_OF = {
    "v": "amsgrad=true keeps the running max of the raw second moment v (torch)",
    "v_hat": "amsgrad=true keeps the running max of the bias-corrected v_hat (optax)",
}
EPS_ROOT = Hyper("eps_root", (Scalar(
    "eps_root", "0", r"\epsilon_{\mathrm{root}}", "ε_root",
    "term added to the second moment inside the square root (optax's `eps_root`)",
    "1/100000000"),), "Invalid eps_root value: {value}", torch=False)


def _amsgrad_hat(c, h):
    # optax: nu_hat = nu/(1 - beta2^t), then the running max of nu_hat (not of nu)
    v_hat = c.state["v"] / (1 - h["beta2"] ** c.state["t"])
    return c.with_state(vmax=S.running_max(c.state["vmax"], v_hat))


AMSGRAD_HAT = S.Stage("amsgrad_v_hat", _amsgrad_hat,
                      "AMSGrad: running max of the bias-corrected second moment v_hat")


@lru_cache(maxsize=None)
def direction(eps_added_to: str, corrected: bool, max_of_hat: bool, root: bool) -> S.Stage:
    """The Adam direction (lr*u is the step) under one combination of the axes: one Stage
    object per combination, so equal rules have equal stages."""
    def fn(c, h):
        t = c.state["t"]
        second = c.state["vmax"] if "vmax" in c.state else c.state["v"]
        r = h["eps_root"] if root else 0
        if not corrected:
            return replace(c, u=c.state["m"] / (sp.sqrt(second + r) + h["eps"]))
        bc1, bc2 = 1 - h["beta1"] ** t, 1 - h["beta2"] ** t
        if eps_added_to == "sqrt_v":
            raw = second * bc2 if max_of_hat else second  # the moment on the scale of v
            return replace(c, u=sp.sqrt(bc2) / bc1 * c.state["m"] / (sp.sqrt(raw + r) + h["eps"]))
        v_hat = second if max_of_hat else second / bc2
        return replace(c, u=c.state["m"] / bc1 / (sp.sqrt(v_hat + r) + h["eps"]))

    inner = ("v" if not corrected or eps_added_to == "sqrt_v" else "v_hat") \
        + (" + eps_root" if root else "")
    doc = (f"direction m / (sqrt({inner}) + eps), no bias correction" if not corrected else
           f"bias-corrected direction sqrt(1 - beta2^t)/(1 - beta1^t) * m / (sqrt({inner}) + eps)"
           if eps_added_to == "sqrt_v" else f"bias-corrected direction m_hat / (sqrt({inner}) + eps)")
    # a name of its own per rule: the engine tells branches apart by stage names (eps_root = 0
    # is torch's stage, a case of its own)
    name = "adam_direction" + ("" if corrected else "_uncorrected") \
        + ("_sqrt_v" if corrected and eps_added_to == "sqrt_v" else "") \
        + ("_max_v_hat" if max_of_hat else "") + ("_eps_root" if root else "")
    return S.Stage(name, fn, doc)


def _stages(spec) -> tuple:
    corrected = spec.choice("bias_correction") == "on"
    max_of_hat = spec.flag("amsgrad") and corrected and spec.choice("amsgrad_max_of") == "v_hat"
    placement = spec.choice("eps_added_to") if corrected else "sqrt_v_hat"
    root = on(spec, "eps_root")
    torchs = corrected and placement == "sqrt_v_hat" and not max_of_hat and not root
    core = [S.MOMENTS] + ([AMSGRAD_HAT if max_of_hat else S.AMSGRAD]
                          if spec.flag("amsgrad") else [])
    core.append(S.ADAM_DIRECTION if torchs else direction(placement, corrected, max_of_hat, root))
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), core)


def _present(spec) -> tuple:
    return ("t", "m", "v") + (("vmax",) if spec.flag("amsgrad") else ())


_COMMON = dict(
    states=STATES, stages=_stages, present=_present,
    positional=("lr", "betas", "eps", "weight_decay", "amsgrad"),
    check_order=("lr", "eps", "betas", "weight_decay"),
    read_order=("betas", "lr", "weight_decay", "eps"),
    choices={"eps_added_to": EPS_ADDED_TO, "bias_correction": BIAS_CORRECTION,
             "amsgrad_max_of": AMSGRAD_MAX_OF},
    switches=("weight_decay", "eps_root"),
    implementations=("loop", "foreach", "fused"), sparse_message=SPARSE,
    torch_checks=("tensor_lr_foreach", "betas_type"))

ENTRIES = (
    Entry(name="adam", torch_class="torch.optim.Adam", reference="torch 2.13 torch/optim/adam.py",
          hypers=(lr("1e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("0"), EPS_ROOT),
          flags={"amsgrad": False, **MAXIMIZE, "decoupled_weight_decay": False},
          keyword=("foreach", "maximize", "capturable", "differentiable", "fused",
                   "decoupled_weight_decay"),
          decays=tuple(DECAYS) + tuple(ADAM_DECAYS), decay_flag="decoupled_weight_decay",
          **_COMMON),
    Entry(name="adamw", torch_class="torch.optim.AdamW",
          reference="torch 2.13 torch/optim/adamw.py",
          hypers=(lr("1e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("1e-2"), EPS_ROOT),
          flags={"amsgrad": False, **MAXIMIZE},
          keyword=("maximize", "foreach", "capturable", "differentiable", "fused"),
          decays=("decoupled",) + tuple(d for d in (*DECAYS, *ADAM_DECAYS) if d != "decoupled"),
          torch_decays={"l2": "adam"},
          **_COMMON),
)
