"""What a catalogue entry is: everything specific to one optimizer, held in one place.

An entry names the torch class it models and lists, with torch's own words:
  - its hyperparameters: keyword, default, domain and the message torch's constructor gives for
    a value outside it (a pair such as betas is one keyword of two scalars);
  - its flags (maximize, amsgrad, ...) and optequiv's own choice keys (decay, buffer);
  - its state entries: torch's state key, the symbol that stands for it, its assumptions, its
    letter, and the value torch gives it on a parameter's first step; what holds in every state
    torch reaches (centered RMSprop's v >= gavg^2), so that a mid-run state is one of those;
  - which zero values switch torch to another branch (momentum 0: no buffer at all);
  - its stages: a function of the spec that returns the ordered tuple (derive.rules runs it).
Every layer (parser, validation, symbols, LaTeX, `list`, claims, code generation, state_dict keys,
fused kernels) reads these fields; none keeps optimizer names of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

DECAYS = {
    "l2": "coupled L2: g <- g + weight_decay*theta, before momentum or moments (torch SGD/Adam)",
    "decoupled": "decoupled, lr-scaled: theta <- theta*(1 - lr*weight_decay) (torch AdamW)",
    "independent": "decoupled, lr-independent: theta <- theta*(1 - weight_decay) (Loshchilov & Hutter)",
    "after": "decoupled, applied after the step to the updated theta (old Hugging Face AdamW)",
    "proximal": "proximal, after the step: theta <- (theta - lr*u)/(1 + lr*weight_decay) "
                "(timm Adan)",
}
# conventions that read Adam's bias correction: offered by the Adam family only
ADAM_DECAYS = {
    "after_bias_corrected": "decoupled, after the step on the updated theta, with Adam's "
                            "bias-corrected lr: theta <- theta - lr*sqrt(1 - beta2^t)/"
                            "(1 - beta1^t)*weight_decay*theta (MXNet 2.x AdamW)",
}
# the conventions whose decay factor is lr*weight_decay: the ones decay_scale rescales
SCALED_DECAYS = ("decoupled", "after", "proximal")
DECAY_SCALES = {
    "lr": "the decay factor is lr*weight_decay (torch)",
    "lr_ratio": "weight_decay*lr/initial_lr: the decay follows the schedule, not the lr's size "
                "(Composer DecoupledAdamW, DecoupledSGDW)",
    "lr_squared_over_max": "weight_decay*lr^2/max_lr (timm corrected_weight_decay)",
}

# What the generated optimizer does for a parameter without a gradient at a step: keys of every
# entry, first value torch's. The symbolic rule is one coordinate's step on a gradient, at every
# step, so these keys never change it: compare, unroll and prove do not tell their values apart;
# the generated torch optimizer (numeric.optimizer) and the harness's missing-gradient scenario do.
MISSING = {
    "step_counter": {
        "per_parameter": "torch: each parameter counts its own steps; one without a gradient "
                         "keeps its count, and a late one starts at 1",
        "per_group": "the count is its param group's number of step() calls: it advances at "
                     "steps where the parameter had no gradient",
        "global": "Keras (optimizer.iterations): the optimizer's number of step() calls; a "
                  "group added later starts at the count the others reached",
    },
    "missing_grad": {
        "skip": "torch, Keras: a parameter whose grad is None is not stepped (state, count "
                "and value stay)",
        "zeros": "optax: it steps on a zero gradient (its state decays, its count advances, "
                 "decoupled decay still applies)",
    },
}
MISSING_NOTE = ("numeric only: the symbolic rule assumes a gradient at every step, so compare, "
                "unroll and prove do not tell these values apart; the generated optimizer does")


@dataclass(frozen=True)
class Scalar:
    """One number of a hyperparameter (lr; beta1 of betas) under its canonical symbol name."""

    name: str  # the canonical symbol ("lr", "beta1"): the generated code's keyword too
    default: str  # torch's default, as decimal text (exact: 1e-3 is 1/1000)
    latex: str
    unicode: str
    meaning: str
    typical: str  # a typical value, for counterexample search (a rational's text)
    low: str | None = "0"  # the domain: low <= value (low < value when low_strict) ...
    low_strict: bool = False
    high: str | None = None  # ... and value <= high (value < high when high_strict)
    high_strict: bool = False


@dataclass(frozen=True)
class Hyper:
    """A keyword of the torch constructor that holds numbers: one Scalar, or two for a pair."""

    key: str
    scalars: tuple
    # torch's ValueError for a value outside the domain, formatted with value= (as written),
    # index= (in a pair), first= and second= (both values of a pair); "" where torch checks
    # nothing (its value is still refused outside the domain, in optequiv's words)
    message: str = ""
    # a keyword of torch's constructor; False: a key of optequiv's for another framework's
    # convention (optax's eps_root), whose default is torch's behaviour: torch's class is the
    # reference only at that default, and the generated class takes it after torch's keywords
    torch: bool = True
    # spec -> whether the rule reads this key (initial_lr only under decay_scale=lr_ratio);
    # elsewhere it stands at its default, never as a symbol of its own. None: always read
    needed: Callable | None = field(default=None, compare=False)
    # a key not given takes the value of this scalar of the spec (initial_lr: the lr, as
    # Composer and timm take the constructor's); the generated class's default is None, filled
    # at construction from the lr of each param group ("group", Composer's initial_lr: the key
    # torch's LR schedulers read as their base lr) or of the constructor ("constructor", timm's
    # max_lr = self.defaults['lr'])
    follows: str | None = None
    follows_from: str = "group"

    @property
    def pair(self) -> bool:
        return len(self.scalars) > 1

    def default(self):
        return tuple(s.default for s in self.scalars) if self.pair else self.scalars[0].default


@dataclass(frozen=True)
class State:
    """A per-parameter state entry under torch's key."""

    name: str  # the symbol's name: m -> m_0, m_t, m_{t-1}
    key: str  # torch's state_dict key
    assumptions: tuple  # SymPy assumptions of the symbol, e.g. (("real", True),)
    latex: str
    unicode: str
    meaning: str
    # torch's value on a parameter's first step, from (spec, hyperparameters): an expression,
    # or None for an entry the first step creates itself (SGD's buffer copies the gradient)
    init: Callable = field(default=lambda spec, h: 0, compare=False)
    scalar: bool = False  # one number per parameter (a 0-dim tensor: the step count), not a tensor
    # torch stores a new value through torch.as_tensor(<Python float>): rounded to the default
    # dtype, whatever the tensor's own dtype (ASGD's eta and mu, float64 after load_state_dict)
    via_default_dtype: bool = False
    # an observable result of the optimizer in its own right (ASGD's average ax), not only a
    # means of computing theta: compare requires it to coincide too, together with every state
    # that it or theta depends on, though nothing feeds it back into theta
    output: bool = False


@dataclass(frozen=True)
class Entry:
    name: str  # the spec language's name, e.g. "adamw"
    torch_class: str | None  # e.g. "torch.optim.AdamW"; None where torch has none (Lion)
    reference: str  # what the model was read from
    hypers: tuple  # Hyper, in the constructor's positional order
    flags: dict  # flag -> torch's default (maximize, amsgrad, ...)
    states: tuple  # every State the optimizer can hold, in display order
    stages: Callable = field(compare=False)  # spec -> tuple of derive.stages.Stage
    present: Callable = field(compare=False)  # spec -> names of the states it holds
    positional: tuple = ()  # the constructor's positional keywords after params, in order
    keyword: tuple = ()  # its keyword-only ones (including foreach / fused / capturable ...)
    check_order: tuple = ()  # the order in which torch's constructor checks its keys
    read_order: tuple = ()  # the keys torch's step reads from a group, in order (KeyError)
    decays: tuple = ("l2",)  # the decay conventions offered; the first is torch's
    decay_flag: str | None = None  # a torch flag that selects decay=decoupled (NAdam's, Adam's)
    torch_decays: dict = field(default_factory=dict)  # decay -> another entry whose class has it
    choices: dict = field(default_factory=dict)  # optequiv's other choice keys -> {value: doc}
    switches: tuple = ("weight_decay",)  # canonical names whose zero changes the stages
    implementations: tuple = ("loop", "foreach")  # torch's implementations of the class
    extra_check: Callable | None = field(default=None, compare=False)  # (given, shown) -> None
    extra_constraints: Callable | None = field(default=None, compare=False)  # (spec, h) -> pairs
    # what holds in every state torch reaches, beyond each entry's own sign (centered RMSprop's
    # v - gavg^2 >= 0, a variance): {name: symbol} of the states a spec holds -> expressions
    # that are >= 0; a mid-run state (compare --from state) is drawn only among such states
    invariants: Callable | None = field(default=None, compare=False)
    # torch's RuntimeError for a sparse gradient; {name}: the torch class, {cls}: the generated
    sparse_message: str = "{name} does not support sparse gradients"
    # what torch's step does with a sparse gradient where it takes one (else sparse_message):
    # "dense" steps as on the densified gradient (SGD: its sparse buffer stands for the dense
    # one), "touched" only the coordinates the coalesced gradient holds (Adagrad: sparse_mask,
    # so an untouched coordinate is not even read: no 0/0 at eps = 0)
    sparse: str | None = None
    # torch's RuntimeError for a sparse gradient under "fused", or under a nonzero value of the
    # hyperparameter named: {key: torch's words}
    sparse_refused: dict = field(default_factory=dict)
    # why torch's foreach step gives other numbers than its loop, where it does: the generated
    # foreach runs the loop's arithmetic, so it is checked against torch's loop
    foreach_differs: str = ""
    torch_checks: tuple = ()  # checks only torch's constructor makes (numeric.optimizer has them)
    # torch makes every parameter's state in __init__, not on its first step, and takes the
    # first values from the constructor's arguments (self.defaults), not from the parameter's
    # group, also when it makes a later parameter's state (Adagrad's sum)
    eager_state: bool = False
    # where the model holds though torch builds the optimizer beyond it: (spec, h) -> (value,
    # strict) pairs meaning value >= 0 (value > 0), and why. A state assumption the engine
    # reasons with (RMSprop's square average v >= 0) may be an invariant only inside it; compare
    # proves nothing outside (valid_when says so where A's symbols decide) and a mapping must
    # keep B inside, where a verdict is about real numbers
    model_constraints: Callable | None = field(default=None, compare=False)
    model_reason: str = ""

    # -- derived views -------------------------------------------------------------------------
    @property
    def scalars(self) -> tuple:
        return tuple(s for h in self.hypers for s in h.scalars)

    @property
    def own(self) -> tuple:
        """The keys of optequiv's own that hold numbers (Hyper.torch False), in order."""
        return tuple(h.key for h in self.hypers if not h.torch)

    def own_for(self, spec) -> tuple:
        """The keys of optequiv's own that `spec`'s rule reads (Hyper.needed), in order."""
        return tuple(h.key for h in self.hypers
                     if not h.torch and (h.needed is None or h.needed(spec)))

    def scalar(self, name: str) -> Scalar:
        return next(s for s in self.scalars if s.name == name)

    def hyper(self, key: str) -> Hyper:
        return next(h for h in self.hypers if h.key == key)

    @property
    def numbers(self) -> tuple:
        return tuple(h.key for h in self.hypers)

    def __post_init__(self):
        # every entry with an lr-scaled decoupled decay takes decay_scale's reference lrs, as
        # keys of optequiv's own after the entry's hypers (default: the entry's default lr)
        if self.scales_decay and not self.has("initial_lr"):
            object.__setattr__(self, "hypers", self.hypers + _scale_hypers(self.hyper("lr")))

    @property
    def scales_decay(self) -> bool:
        """decay_scale applies: weight decay with an lr-scaled decoupled convention offered."""
        return self.has("weight_decay") and self.has("lr") \
            and any(d in SCALED_DECAYS for d in self.decays)

    @property
    def all_choices(self) -> dict:
        out = {"decay": {d: {**DECAYS, **ADAM_DECAYS}[d] for d in self.decays}} \
            if self.has("weight_decay") else {}
        if self.scales_decay:
            out["decay_scale"] = dict(DECAY_SCALES)
        out.update(self.choices)
        out.update(MISSING)
        return out

    @property
    def counts(self) -> tuple:
        """The names of the step counts among the states (what step_counter counts)."""
        return tuple(s.name for s in self.states if s.assumptions == COUNT)

    @property
    def keys(self) -> tuple:
        return self.numbers + tuple(self.flags) + tuple(self.all_choices)

    def has(self, key: str) -> bool:
        return any(h.key == key for h in self.hypers)

    def defaults(self) -> dict:
        out = {h.key: h.default() for h in self.hypers}
        out.update(self.flags)
        out.update({k: next(iter(v)) for k, v in self.all_choices.items()})
        return out

    def state(self, name: str) -> State:
        return next(s for s in self.states if s.name == name)

    @property
    def class_name(self) -> str:
        return (self.torch_class or self.name.capitalize()).rsplit(".", 1)[-1]


def on(spec, name: str) -> bool:
    """Whether a switch's value is non-zero: torch's `if momentum != 0` on the spec's value (a
    symbol counts as its generic, non-zero value; a caller substitutes 0 for the other branch)."""
    value = spec.hyper().get(name, 0)
    return value != 0


REAL = (("real", True),)
NONNEGATIVE = (("nonnegative", True),)
COUNT = (("integer", True), ("nonnegative", True))


def _scale_hypers(lr: Hyper) -> tuple:
    """decay_scale's reference lrs: initial_lr (lr_ratio) and max_lr (lr_squared_over_max),
    positive, by default the lr (the constructor's, as Composer and timm take it)."""
    default = lr.scalars[0].default
    return (
        Hyper("initial_lr", (Scalar(
            "initial_lr", default, r"\gamma_0", "γ₀",
            "the lr the decay is scaled against under decay_scale=lr_ratio (Composer's "
            "initial_lr; default: the lr)", "1/10", low_strict=True),),
            "Invalid initial_lr value: {value}: decay_scale=lr_ratio scales the decay by "
            "lr/initial_lr, so initial_lr must be positive", torch=False,
            needed=lambda spec: spec.decay_scale == "lr_ratio", follows="lr"),
        Hyper("max_lr", (Scalar(
            "max_lr", default, r"\gamma_{\max}", "γₘₐₓ",
            "the peak lr of decay_scale=lr_squared_over_max (timm's max_lr; default: the lr)",
            "1/10", low_strict=True),),
            "Corrected weight decay requires a positive max lr, got {value}. Construct the "
            "optimizer with the peak lr.", torch=False,
            needed=lambda spec: spec.decay_scale == "lr_squared_over_max", follows="lr",
            follows_from="constructor"),
    )
