"""The catalogue oracle (tests/exact_catalogue.py) against torch.optim itself, float64.

For every family and every configuration below, the FLOAT backend (torch's float32 0-dim scalar
state emulated) must match torch's single-tensor loop (foreach=False) in float64 to 1e-12
relative on theta and on every state value after every one of 15 steps of a fixed gradient
sequence with sign changes and zeros, and hold exactly torch's state keys. FLOAT64 must match
torch run under torch.set_default_dtype(torch.float64); the exact backend (rationals or mpmath at
100 digits) must match FLOAT64; the SYMPY backend's symbolic theta_k, with numbers substituted,
must match FLOAT64. Conventions torch has no keyword for are built from torch's own step, as
exact_catalogue's docstring defines them. Lion has no torch class: it is checked against a second
implementation written here in torch tensor ops from the paper. Negative controls plant bugs in
the oracle and require the torch comparison to fail.
"""
from __future__ import annotations

import inspect
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import exact_catalogue as C

RTOL = 1e-12
THETA0 = [0.7, -1.3]
# coordinate 0: runs of one sign (Rprop grows to its clamp); 1: alternating, with zeros
GRADS = list(zip(
    [0.5, 0.8, 1.2, 0.9, 0.7, -0.4, -0.6, 0.3, 1.1, 0.6, 0.2, 0.9, -1.3, -0.2, 0.4],
    [-1.0, 0.7, -0.5, 0.9, -1.4, 0.0, 0.6, -0.8, 0.3, -0.2, 1.5, -0.9, 0.0, 0.5, -0.7]))
TORCH = {"adamax": torch.optim.Adamax, "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam,
         "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
         "adadelta": torch.optim.Adadelta, "asgd": torch.optim.ASGD, "rprop": torch.optim.Rprop}
WD = {"weight_decay": 0.1}


def decays(family, base):
    """`base` with weight decay under each convention the oracle offers for the family."""
    return [dict(base, family=family, decay=d, **WD) for d in C.DECAYS[family]]


CONFIGS = [
    {"family": "adamax"},
    {"family": "adamax", "lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-3, "maximize": True, **WD},
    *decays("adamax", {"lr": 0.05}),
    {"family": "nadam", "lr": 0.01},
    {"family": "nadam", "lr": 0.05, "momentum_decay": 0.05, "betas": (0.5, 0.9), "eps": 1e-3},
    {"family": "nadam", "lr": 0.05, "decoupled_weight_decay": True, **WD},
    {"family": "nadam", "lr": 0.02, "maximize": True, **WD},
    *decays("nadam", {"lr": 0.05}),
    {"family": "radam", "lr": 0.01},  # beta2 = 0.999: rho_t > 5 from t = 6 on
    {"family": "radam", "lr": 0.05, "betas": (0.9, 0.9), "eps": 1e-3, "maximize": True},
    {"family": "radam", "lr": 0.05, "betas": (0.9, 0.5)},  # rho_inf = 3: never rectified
    {"family": "radam", "lr": 0.05, "decoupled_weight_decay": True, **WD},
    *decays("radam", {"lr": 0.05, "betas": (0.8, 0.95)}),
    {"family": "rmsprop"},
    {"family": "rmsprop", "centered": True, "eps": 1e-3},
    {"family": "rmsprop", "momentum": 0.9},
    {"family": "rmsprop", "centered": True, "momentum": 0.5, "alpha": 0.9, "eps": 1e-3,
     "maximize": True, **WD},
    *decays("rmsprop", {"lr": 0.05, "alpha": 0.9}),
    {"family": "adagrad"},
    {"family": "adagrad", "lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.5},
    {"family": "adagrad", "lr": 0.1, "eps": 1e-3, "maximize": True, **WD},
    *decays("adagrad", {"lr": 0.1, "lr_decay": 0.2}),
    {"family": "adadelta"},
    {"family": "adadelta", "lr": 0.5, "rho": 0.5, "eps": 1e-3, "maximize": True, **WD},
    *decays("adadelta", {"lr": 0.5}),
    {"family": "asgd"},
    {"family": "asgd", "lr": 0.05, "lambd": 0.1, "alpha": 0.5, "t0": 3},  # mu != 1 from t = 5
    {"family": "asgd", "lr": 0.05, "t0": 0, "maximize": True, **WD},
    {"family": "asgd", "lr": 0.05, "lambd": 0.2, "alpha": 1, "t0": 4.0},
    *decays("asgd", {"lr": 0.05, "t0": 3}),
    {"family": "rprop"},
    {"family": "rprop", "etas": (0.5, 2.0), "step_sizes": (2e-3, 0.05)},  # both clamps reached
    {"family": "rprop", "lr": 0.1, "etas": (0.3, 1.5), "maximize": True},
    *decays("rprop", {"etas": (0.5, 2.0), "step_sizes": (2e-3, 0.05)}),
]
LION = [
    {"family": "lion"},
    {"family": "lion", "lr": 0.01, "betas": (0.5, 0.9), **WD},
    {"family": "lion", "lr": 0.01, "maximize": True},
    *decays("lion", {"lr": 0.02}),
]


def name(config):
    return "-".join(f"{k}={v}" for k, v in config.items() if k != "family") \
        .replace(" ", "") or "defaults"


def ids(configs):
    return [f"{c['family']}:{name(c)}" for c in configs]


# -- torch, with the conventions it has no keyword for built around its step ---------------------

def floats(config):
    """The normalized configuration with torch's Python floats for the oracle's Fractions."""
    return {k: float(v) if isinstance(v, Fraction) else v for k, v in C.normalize(config).items()}


def torch_run(config, theta0=THETA0, grads=GRADS):
    c = floats(config)
    family, wd, decay = c["family"], c["weight_decay"], c["decay"]
    native = family != "rprop" and (decay == "l2" or (decay == "decoupled"
                                                      and c.get("decoupled_weight_decay")))
    kwargs = {k: v for k, v in config.items()
              if k not in ("family", "decay", "weight_decay", "step_sizes", "etas")}
    kwargs.update({k: tuple(map(float, config[k])) for k in ("step_sizes", "etas") if k in config})
    if family != "rprop":
        kwargs["weight_decay"] = wd if native else 0.0
    p = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    opt = TORCH[family]([p], foreach=False, **kwargs)
    slot, out = opt.state[p], []
    for k, g in enumerate(grads, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        with torch.no_grad():
            # the decoupled decays scale by the group's lr (Adagrad's count decay is part of
            # its update, not of that lr) or by ASGD's eta: exact_catalogue's docstring
            if family == "asgd":
                lr = slot["eta"].item() if slot else \
                    torch.tensor(c["lr"], dtype=torch.get_default_dtype()).item()
            else:
                lr = c["lr"]
            if wd and not native:
                if decay == "l2":  # Rprop: torch negates p.grad under maximize, then we add
                    g = g + (-wd if c["maximize"] else wd) * p
                elif decay in ("decoupled", "independent"):
                    p.mul_(1 - (lr * wd if decay == "decoupled" else wd))
            p.grad = g
            opt.step()
            if wd and not native and decay == "after":
                p.add_(p, alpha=-lr * wd)
        out.append((p.detach().tolist(), {key: v.tolist() for key, v in slot.items()}))
    return out


def lion_torch(config, theta0=THETA0, grads=GRADS):
    """Chen et al. 2023, Alg. 1 (lion-pytorch's update), in torch tensor ops; the decay
    conventions as the oracle's docstring defines them."""
    c = floats(config)
    lr, b1, b2, wd, decay = c["lr"], c["beta1"], c["beta2"], c["weight_decay"], c["decay"]
    p = torch.tensor(theta0, dtype=torch.float64)
    m = torch.zeros_like(p)
    out = []
    for g in grads:
        g = torch.tensor(g, dtype=torch.float64) * (-1 if c["maximize"] else 1)
        if decay == "l2":
            g = g + wd * p
        elif decay == "decoupled":
            p = p * (1 - lr * wd)
        elif decay == "independent":
            p = p * (1 - wd)
        p = p - lr * torch.sign(torch.lerp(g, m, b1))
        if decay == "after":
            p = p - lr * wd * p
        m = b2 * m + (1 - b2) * g
        out.append((p.tolist(), {"exp_avg": m.tolist()}))
    return out


def mismatches(reference, simulated, rtol=RTOL) -> list:
    """Every value that differs by more than rtol (relative, with a floor of 1e-300), and
    every state key that one side has and the other lacks, at every step."""
    bad = []
    for k, ((theta, state), (s_theta, s_state)) in enumerate(zip(reference, simulated[1:]), 1):
        if set(state) != set(s_state):
            bad.append(f"step {k}: torch keys {sorted(state)}, oracle {sorted(s_state)}")
        pairs = [("theta", theta, s_theta)] + [(n, v, s_state.get(n)) for n, v in state.items()]
        for key, ref, mine in pairs:
            ref, mine = np.atleast_1d(ref), np.atleast_1d(np.asarray(mine, dtype=float))
            if ref.shape != mine.shape or np.any(np.abs(ref - mine) > rtol * np.maximum(
                    np.maximum(np.abs(ref), np.abs(mine)), 1e-300)):
                bad.append(f"step {k} {key}: torch {ref.tolist()}, oracle {mine.tolist()}")
    return bad


def exact(config):
    """The configuration's float values as exact rationals (the numbers torch computes with)."""
    return {k: tuple(map(Fraction, v)) if isinstance(v, tuple) else
            Fraction(v) if isinstance(v, float) else v for k, v in config.items()}


def exact_theta_and_grads():
    return [Fraction(x) for x in THETA0], [[Fraction(x) for x in g] for g in GRADS]


@pytest.fixture
def default_float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# -- the oracle against torch ---------------------------------------------------------------------

def test_defaults_are_torchs():
    for family, cls in TORCH.items():
        params = inspect.signature(cls.__init__).parameters
        machinery = {"self", "params", "foreach", "differentiable", "capturable", "fused"}
        assert set(params) - machinery <= set(C.DEFAULTS[family]), family
        for key, value in C.DEFAULTS[family].items():
            if family == "rprop" and key == "weight_decay":
                assert key not in params  # optequiv's extension, default 0
                continue
            default = params[key].default
            ours = tuple(map(float, value)) if isinstance(value, tuple) else value
            assert default == ours and type(default) is type(ours) or \
                isinstance(default, float) and float(ours) == default, (family, key)


@pytest.mark.parametrize("config", CONFIGS, ids=ids(CONFIGS))
def test_float_matches_torch(config):
    assert mismatches(torch_run(config), C.simulate(config, THETA0, GRADS, ops=C.FLOAT)) == []


@pytest.mark.parametrize("config", CONFIGS, ids=ids(CONFIGS))
def test_float64_matches_torch_with_float64_default(config, default_float64):
    assert mismatches(torch_run(config), C.simulate(config, THETA0, GRADS, ops=C.FLOAT64)) == []


@pytest.mark.parametrize("config", [{"family": "nadam", "lr": 0.05},
                                    {"family": "asgd", "lr": 0.05, "t0": 3}], ids=name)
def test_float32_scalar_state_is_what_torch_does(config):
    """Without the float32 rounding of mu_product / eta and mu, the oracle misses torch's
    default by far more than the tolerance: FLOAT's emulation is needed, not decoration."""
    assert mismatches(torch_run(config), C.simulate(config, THETA0, GRADS, ops=C.FLOAT64))


@pytest.mark.parametrize("config", CONFIGS + LION, ids=ids(CONFIGS + LION))
def test_exact_matches_float64(config):
    theta0, grads = exact_theta_and_grads()
    ops = C.exact_ops(config)
    sim = C.simulate(exact(config), theta0, grads, ops=ops)
    ref = C.simulate(config, THETA0, GRADS, ops=C.FLOAT64)
    as_float = [(theta, {k: np.asarray(v, dtype=float).tolist() for k, v in state.items()})
                for theta, state in ref[1:]]
    assert mismatches(as_float, sim) == []
    if config["family"] in ("rprop", "lion"):  # no root, no irrational power: exact rationals
        assert ops is C.FRACTION and all(isinstance(x, Fraction) for x in sim[-1][0])


@pytest.mark.parametrize("config", LION, ids=ids(LION))
def test_lion_matches_a_torch_implementation_of_the_paper(config):
    assert mismatches(lion_torch(config), C.simulate(config, THETA0, GRADS, ops=C.FLOAT)) == []


# -- symbolic --------------------------------------------------------------------------------------

SYM = {"lr": sp.Symbol("gamma", positive=True), "beta2": sp.Symbol("beta_2", positive=True),
       "wd": sp.Symbol("lambda", positive=True)}
SYMBOLIC = [  # (a config with symbols, a sympy function that theta_k must contain)
    ({"family": "adamax", "lr": SYM["lr"], "weight_decay": SYM["wd"]}, sp.Max),
    ({"family": "nadam", "lr": SYM["lr"], "decoupled_weight_decay": True,
      "weight_decay": SYM["wd"]}, None),
    ({"family": "radam", "lr": SYM["lr"], "betas": (Fraction(9, 10), SYM["beta2"])},
     sp.Piecewise),
    ({"family": "rmsprop", "lr": SYM["lr"], "centered": True, "momentum": Fraction(1, 2)}, None),
    ({"family": "adagrad", "lr": SYM["lr"], "lr_decay": Fraction(1, 10),
      "initial_accumulator_value": Fraction(1, 2)}, None),
    ({"family": "adadelta", "lr": SYM["lr"], "weight_decay": SYM["wd"]}, None),
    ({"family": "asgd", "lr": SYM["lr"], "t0": 1, "weight_decay": SYM["wd"]}, None),
    ({"family": "rprop", "lr": SYM["lr"], "weight_decay": SYM["wd"], "decay": "independent"},
     sp.Piecewise),
    ({"family": "lion", "lr": SYM["lr"], "weight_decay": SYM["wd"]}, sp.sign),
]
VALUES = {SYM["lr"]: Fraction(1, 20), SYM["beta2"]: Fraction(9, 10), SYM["wd"]: Fraction(1, 10)}


@pytest.mark.parametrize("config,function", SYMBOLIC, ids=[c["family"] for c, _ in SYMBOLIC])
def test_sympy_theta_is_an_exact_expression(config, function):
    """theta_3 in symbolic hyperparameters and gradients; substituted, it is the float value.
    (RAdam needs 7 steps at beta2 = 9/10 to cross rho_t > 5 and is run that far.)"""
    steps = 7 if config["family"] == "radam" else 3
    gs = sp.symbols(f"g1:{steps + 1}", real=True)
    traj = C.simulate(config, sp.Symbol("theta_0", real=True), list(gs), ops=C.SYMPY)
    theta = traj[-1][0]
    assert theta.free_symbols >= set(gs[:1]) | {s for s in config.values()
                                                if isinstance(s, sp.Symbol)}
    if function is not None:
        assert theta.has(function)
    grads = [float(g[0]) for g in GRADS[:steps]]
    point = {sp.Symbol("theta_0", real=True): sp.Rational(7, 10),
             **{g: sp.Rational(Fraction(v)) for g, v in zip(gs, grads)},
             **{k: sp.Rational(v) for k, v in VALUES.items()}}
    numeric = {k: (tuple(float(VALUES.get(x, x)) for x in v) if isinstance(v, tuple) else
                   float(VALUES.get(v, v)) if isinstance(v, (sp.Symbol, Fraction)) else v)
               for k, v in config.items()}
    ref = C.simulate(numeric, 0.7, grads, ops=C.FLOAT64)[-1][0]
    assert abs(float(sp.N(theta.subs(point), 30)) - ref) <= RTOL * max(abs(ref), 1.0)


# -- the configurations reach the branches they are there for -------------------------------------

def test_branches_are_exercised():
    rprop = C.simulate({"family": "rprop", "etas": (0.5, 2.0), "step_sizes": (2e-3, 0.05)},
                       THETA0, GRADS, ops=C.FLOAT)
    sizes = {x for _, s in rprop for x in s["step_size"]}
    assert {2e-3, 0.05} <= sizes  # both clamps bind
    assert any(p == 0 for _, s in rprop[1:] for p in s["prev"])  # a sign switch skipped a step
    asgd = C.simulate({"family": "asgd", "t0": 3}, THETA0, GRADS, ops=C.FLOAT)
    assert {s["mu"] for _, s in asgd} > {1.0}
    b2 = Fraction(999, 1000)
    rho = [2 / (1 - b2) - 1 - 2 * t * b2 ** t / (1 - b2 ** t) for t in range(1, 16)]
    assert min(rho) < 5 < max(rho)


def test_refuses_what_it_does_not_model():
    with pytest.raises(ValueError, match="not offered"):
        C.normalize({"family": "rprop", "decay": "decoupled"})
    with pytest.raises(ValueError, match="no keyword"):
        C.normalize({"family": "adagrad", "momentum": 0.9})
    with pytest.raises(ValueError, match="decoupled_weight_decay"):
        C.normalize({"family": "nadam", "decoupled_weight_decay": True, "decay": "l2"})
    with pytest.raises(TypeError, match="square root"):
        C.simulate({"family": "adagrad"}, 1, [1], ops=C.FRACTION)


# -- negative controls ----------------------------------------------------------------------------

def _buggy_lion(c, s, theta, g, ops):  # the momentum updated before the sign is taken
    m = c["beta2"] * s["exp_avg"] + (1 - c["beta2"]) * g
    return {"exp_avg": m}, theta - c["lr"] * ops.sign(m)


PLANTED = {
    "rmsprop eps inside the sqrt": ("rmsprop", "rmsprop_denominator",
                                    lambda x, eps, ops: ops.sqrt(x + eps)),
    "nadam without the mu product": ("nadam", "nadam_mu_product", lambda prod, mu, ops: mu),
    "rprop without the clamp": ("rprop", "rprop_clamp", lambda size, lo, hi, ops: size),
    "radam switch at rho_t > 4": ("radam", "RADAM_THRESHOLD", 4),
    "radam switch at rho_t > 6": ("radam", "RADAM_THRESHOLD", 6),
    "adagrad without lr_decay": ("adagrad", "adagrad_clr", lambda lr, t, decay: lr),
}


@pytest.mark.parametrize("bug", PLANTED, ids=list(PLANTED))
def test_negative_control(bug, monkeypatch):
    family, attribute, replacement = PLANTED[bug]
    monkeypatch.setattr(C, attribute, replacement)
    caught = [c for c in CONFIGS if c["family"] == family
              and mismatches(torch_run(c), C.simulate(c, THETA0, GRADS, ops=C.FLOAT))]
    assert caught, f"planted bug not caught: {bug}"


def test_negative_control_lion(monkeypatch):
    monkeypatch.setitem(C.STEPS, "lion", _buggy_lion)
    assert all(mismatches(lion_torch(c), C.simulate(c, THETA0, GRADS, ops=C.FLOAT))
               for c in LION)


# -- drawn gradient sequences ----------------------------------------------------------------------

signed = st.sampled_from([0.0, 0.25, -0.25, 1.0, -1.0]) | st.floats(-3, 3, allow_nan=False)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(grads=st.lists(st.tuples(signed, signed), min_size=15, max_size=15),
       maximize=st.booleans(), centered=st.booleans())
def test_drawn_gradients_rprop_and_rmsprop(grads, maximize, centered):
    rprop = {"family": "rprop", "etas": (0.5, 2.0), "step_sizes": (2e-3, 0.05),
             "maximize": maximize}
    rmsprop = {"family": "rmsprop", "centered": centered, "momentum": 0.5, "eps": 1e-3,
               "maximize": maximize}
    for config in (rprop, rmsprop):
        assert mismatches(torch_run(config, grads=grads),
                          C.simulate(config, THETA0, grads, ops=C.FLOAT)) == []


@pytest.mark.parametrize("config", [{"family": "adamax", "lr": 0.05},
                                    {"family": "asgd", "lr": 0.05, "t0": 3, **WD},
                                    {"family": "rprop", "lr": 0.1}], ids=name)
def test_closed_loop(config):
    """g_k = grad f(theta_{k-1}) for f = sum(theta^2 - theta): the oracle's closed loop is
    torch's when its gradients, fed to torch, give back the same theta at every step."""
    sim = C.simulate(config, THETA0, lambda theta: [2 * x - 1 for x in theta], steps=15,
                     ops=C.FLOAT)
    grads = [[2 * x - 1 for x in theta] for theta, _ in sim[:-1]]
    assert mismatches(torch_run(config, grads=grads), sim) == []
