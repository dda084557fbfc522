"""`train.strategy` as a Lightning strategy, and the checks that a trial can run under it.

Lightning launches and connects the ranks; this only picks the strategy. DDP finds unused
parameters because an RL step backpropagates the AV loss and the AR loss separately (each
leaves the other model's parameters without a gradient).
"""

from __future__ import annotations

import importlib.util

import torch
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, Strategy

from nla_variants.config import TrainConfig
from nla_variants.errors import NLAError


def world_size(train: TrainConfig) -> int:
    return train.devices * train.num_nodes


def check_strategy(train: TrainConfig, device: torch.device) -> None:
    """Refuse, before anything loads, a strategy this trial cannot run under."""
    world = world_size(train)
    sizes = {"av_sft": train.av_sft.batch_size, "ar_sft": train.ar_sft.batch_size}
    if train.rl.steps:
        sizes["rl"] = train.rl.batch_size
    for stage, size in sizes.items():
        if size < world:
            raise NLAError(
                f"train.{stage}.batch_size {size} is below the {world} ranks "
                f"(train.devices x train.num_nodes); it is the global batch, split over them",
                f"set train.{stage}.batch_size >= {world}",
            )
    if train.strategy in ("fsdp", "deepspeed"):
        if device.type != "cuda":
            raise NLAError(
                f"train.strategy {train.strategy} shards over CUDA devices; this trial runs on "
                f"{device.type}",
                "use train.strategy=ddp (or auto) on CPU",
            )
        if train.rl.steps:
            raise NLAError(
                f"RL (two optimisers, stepped by hand) runs under ddp only, not {train.strategy}",
                "set train.strategy=ddp, or train.rl.steps=0 for a warm start alone",
            )
    if train.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise NLAError(
            "train.strategy deepspeed needs the deepspeed package, which is not installed",
            "pip install deepspeed, or use train.strategy=ddp or fsdp",
        )


def lightning_strategy(train: TrainConfig, device: torch.device) -> str | Strategy:
    """The Lightning strategy for `train.strategy` (auto: one device, or ddp over several)."""
    name = train.strategy
    if name == "auto":
        name = "ddp" if world_size(train) > 1 else "auto"
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=True)
    if name == "fsdp":
        return FSDPStrategy()
    return name
