"""The ranks of one trial: who leads, and the few collectives the stages need outside Lightning.

Lightning launches the processes (its subprocess launcher for `train.devices` > 1 on one
machine, torchrun or SLURM through its cluster environments for several nodes) and initialises
the process group at the first `fit`. Everything here works before that too: with no process
group every call is the single-process answer, so the one-device path runs the same code.

Rank 0 leads: it alone writes MLflow, the Optuna study, checkpoints and the warm-start cache;
the other ranks follow it through the same stages (`run_trial` with `leader=False`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import torch.distributed as dist

TRIAL_ENV = "NLA_TRIAL_CONFIG"  # the leader's trial, for ranks Lightning launches mid-run
DECISIONS_ENV = "NLA_LEADER_DECISIONS"  # what the leader decided before they were launched


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def rank() -> int:
    """This process's global rank: from the process group, or (before it exists) from the
    variables the launcher set: LOCAL_RANK for a rank Lightning's own launcher started (it
    carries the leader's trial; a RANK or SLURM_PROCID it inherited is the leader's), else RANK
    (torchrun), SLURM_PROCID, else NODE_RANK and LOCAL_RANK."""
    if initialized():
        return dist.get_rank()
    if TRIAL_ENV in os.environ and "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", 0))
    return local + int(os.environ.get("NODE_RANK", 0)) * 10**6  # only 0 or not matters here


def is_leader() -> bool:
    return rank() == 0


def is_follower() -> bool:
    """A rank > 0 of a multi-process job (launched by Lightning, torchrun or SLURM)."""
    return not is_leader()


def launched_world() -> int:
    """How many processes an external launcher (torchrun, or `srun` under SLURM, read through
    Lightning's cluster environments) started for this job; 1 when none did."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    found = [e for e in (TorchElasticEnvironment, SLURMEnvironment) if e.detect()]
    return found[0]().world_size() if found else 1


def init_from_env() -> None:
    """Join the process group now that an external launcher started this job's ranks, so they
    agree on each trial before any stage trains; Lightning then reuses the group."""
    if initialized() or launched_world() < 2:
        return
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    env = next(e for e in (TorchElasticEnvironment, SLURMEnvironment) if e.detect())()
    os.environ.setdefault("MASTER_ADDR", env.main_address)
    os.environ.setdefault("MASTER_PORT", str(env.main_port))
    backend = "gloo"
    if torch.cuda.is_available():  # objects travel over gloo, tensors on the GPU over NCCL
        torch.cuda.set_device(env.local_rank())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, rank=env.global_rank(), world_size=env.world_size())


def close() -> None:
    """Tear the process group down before the interpreter exits: gloo's threads left to the
    exit-time destructors can abort the process ("terminate called without an active
    exception", exit -6) after a run that finished its work."""
    if initialized():
        dist.destroy_process_group()


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (picklable; the single-process answer without a group)."""
    if not initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def _wire(t: torch.Tensor) -> torch.Tensor:
    """`t` where the group's backend can send it: on the GPU for a NCCL-only group (what
    Lightning starts on CUDA), anywhere for gloo or a mixed cpu:gloo,cuda:nccl group."""
    return t.cuda() if dist.get_backend() == "nccl" else t


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of `t` ([n_rank, ...], n_rank may differ), concatenated in rank order,
    on `t`'s device."""
    if not initialized():
        return t
    counts = gather_objects(len(t))
    padded = _wire(t.new_zeros((max(counts), *t.shape[1:])))
    padded[: len(t)] = t.to(padded.device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).to(t.device)


def total(value: float) -> float:
    """The sum of `value` over ranks."""
    if not initialized():
        return value
    t = _wire(torch.tensor([float(value)], dtype=torch.float64))
    dist.all_reduce(t)
    return float(t.item())


def everywhere(flag: bool) -> bool:
    """True only if `flag` holds on every rank (a step is skipped on all ranks or on none)."""
    return total(0.0 if flag else 1.0) == 0.0


def share_of(n: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of n rows (the first n % world ranks get one more), so
    the shares in rank order are the rows in order."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def share(n: int) -> slice:
    """This rank's share of n rows (all of them without a process group)."""
    return share_of(n, rank(), world_size()) if initialized() else slice(0, n)


def barrier() -> None:
    if initialized():
        dist.barrier()


def trial_from_env() -> dict | None:
    """The trial config a leader handed to the ranks Lightning launched (None: none was)."""
    raw = os.environ.get(TRIAL_ENV)
    return json.loads(raw) if raw else None


def agree(key: str, value: Any) -> Any:
    """Rank 0's `value` for a decision every rank must share (a cache hit, a path): broadcast
    once the group exists; before that the leader notes it in the environment, where the ranks
    Lightning launches at the first `fit` find it (they re-run the stages before it and would
    otherwise decide for themselves). JSON values only."""
    if initialized():
        return broadcast(value)
    if is_leader():
        decided = json.loads(os.environ.get(DECISIONS_ENV, "{}"))
        os.environ[DECISIONS_ENV] = json.dumps({**decided, key: value})
        return value
    return json.loads(os.environ.get(DECISIONS_ENV, "{}")).get(key, value)


def hand_over(config: dict) -> None:
    """Give this trial's config to the followers: by broadcast once they exist, and in the
    environment that the ranks Lightning launches at the first `fit` inherit."""
    os.environ[TRIAL_ENV] = json.dumps(config)
    os.environ[DECISIONS_ENV] = "{}"  # a new trial: nothing decided yet
    if initialized():
        broadcast(config)


def release_followers() -> None:
    """Tell waiting followers that no trial comes (the leader's command is done)."""
    if initialized() and world_size() > 1:
        broadcast(None)
