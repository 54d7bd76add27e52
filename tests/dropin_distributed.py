"""What the two processes of a distributed drop-in test run (spawned by test_dropin_distributed;
a module of its own so that spawn can import it by name).

One process group runs every case of one setting: each catalogue entry with torch's class and
with the generated one, and the planted bug, on a tiny model, 20 steps, rank-dependent data.
Rank 0 sends back {case: differences} (or the reason a setting cannot run here)."""
from __future__ import annotations

import os
import traceback

import torch
import torch.distributed as dist

from dropin import SPECS, compare, optimizers, tensors
from optequiv.derive.rules import build_rule

STEPS = 20
RESUME_AT = 10


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def _data(rank):
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(8, 4, generator=g)
    return x, torch.sin(x.sum(1, keepdim=True))


def _local(t):
    return t.to_local() if hasattr(t, "to_local") else t


def _snapshot(model, opt) -> torch.Tensor:
    """Parameters and the optimizer state this rank holds (its shard, for ZeRO and FSDP2)."""
    params = [torch.nn.Parameter(_local(p.detach())) for p in model.parameters()]
    inner = getattr(opt, "optim", opt)  # ZeroRedundancyOptimizer holds the local optimizer
    state = {q: {k: _local(v) for k, v in inner.state.get(p, {}).items()}
             for p, q in zip(model.parameters(), params)}
    holder = type("State", (), {"state": state})
    return tensors(params, holder)


def _train(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _ddp(make, rank, _):
    model = torch.nn.parallel.DistributedDataParallel(_model())
    opt = make(model.parameters())
    _train(model, opt, *_data(rank), STEPS)
    return _snapshot(model.module, opt)


def _zero(make, rank, _):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    model = torch.nn.parallel.DistributedDataParallel(_model())
    cls, kwargs = make
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, **kwargs)
    _train(model, opt, *_data(rank), STEPS)
    return _snapshot(model.module, opt)


def _sharded():
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = _model()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model:
        if any(True for _ in layer.parameters()):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _fsdp2(make, rank, _):
    model = _sharded()
    opt = make(model.parameters())
    _train(model, opt, *_data(rank), STEPS)
    return _snapshot(model, opt)


def _dcp(make, rank, directory):
    """FSDP2 training saved halfway through torch.distributed.checkpoint, then a fresh model
    and optimizer (other initial values) loaded from it and trained on."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    x, y = _data(rank)
    model = _sharded()
    opt = make(model.parameters())
    _train(model, opt, x, y, RESUME_AT)
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=directory)
    torch.manual_seed(1)
    model = _sharded()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # other initial values: what is loaded must replace them
    opt = make(model.parameters())
    model_sd, optim_sd = get_state_dict(model, opt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=directory)
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    _train(model, opt, x, y, STEPS - RESUME_AT)
    return _snapshot(model, opt)


SETTINGS = {"ddp": _ddp, "zero": _zero, "fsdp2": _fsdp2, "dcp": _dcp}


def _makers(setting, spec, plant):
    cls, kwargs, generated = optimizers(spec, plant=plant)
    if setting == "zero":  # ZeroRedundancyOptimizer builds the optimizer itself
        return (cls, kwargs), (generated, kwargs)
    return (lambda ps: cls(ps, **kwargs)), (lambda ps: generated(ps, **kwargs))


def cases():
    """(case name, spec, planted): every entry, and the planted bug on the first with Adam's
    direction (its plant, the bias correction a step ahead, is the clearest; torch's own class
    runs in every setting, which Rprop's does not under FSDP2)."""
    target = next(s for s in SPECS if "adam_direction" in build_rule(s).stage_names())
    return [(spec, spec, False) for spec in SPECS] + [(f"planted {target}", target, True)]


def worker(rank, world, port, setting, directory, queue):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    out = {}
    try:
        for name, spec, plant in cases():
            theirs_make, ours_make = _makers(setting, spec, plant)
            run = SETTINGS[setting]
            try:
                theirs = run(theirs_make, rank, os.path.join(directory, f"{len(out)}-torch"))
            except Exception as error:  # noqa: BLE001 - torch.optim's own class cannot run here
                # (torch's Rprop indexes a sharded DTensor in place under FSDP2): nothing to match
                out[name] = {"torch_raised": f"{type(error).__name__}: "
                                             f"{str(error).splitlines()[0][:200]}"}
                continue
            ours = run(ours_make, rank, os.path.join(directory, f"{len(out)}-ours"))
            out[name] = compare(ours, theirs, torch.float32)
            if setting == "dcp":  # the checkpoint really restores: as if never interrupted
                straight = _fsdp2(theirs_make, rank, None)
                out[name]["restored_rel"] = compare(theirs, straight, torch.float32)["rel"]
    except Exception:  # the whole setting: one line of what failed, for the test to show
        out = {"error": traceback.format_exc(limit=-3)}
    finally:
        if rank == 0:
            queue.put(out)
        dist.destroy_process_group()
