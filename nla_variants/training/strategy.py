"""`train.strategy` as a Lightning strategy, and the checks that a trial can run under it.

Lightning launches and connects the ranks; this only picks the strategy. DDP finds unused
parameters because an RL step backpropagates the AV loss and the AR loss separately (each
leaves the other model's parameters without a gradient).
"""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy, Strategy

from nla_variants.common.errors import NLAError
from nla_variants.config import TrainConfig


def world_size(train: TrainConfig) -> int:
    return train.devices * train.num_nodes


def check_strategy(train: TrainConfig) -> None:
    """Refuse, before anything loads, a strategy this trial cannot run under."""
    world = world_size(train)
    sizes = {
        "av_sft.batch_size": train.av_sft.batch_size,
        "ar_sft.batch_size": train.ar_sft.batch_size,
    }
    if train.av_sft.eval_every:  # every rank scores a share of the held-out rows
        sizes["av_sft.eval_samples"] = train.av_sft.eval_samples
    if train.rl.steps:
        sizes["rl.batch_size"] = train.rl.batch_size
    for key, size in sizes.items():
        if size < world:
            raise NLAError(
                f"train.{key} {size} is below the {world} ranks (train.devices x "
                f"train.num_nodes); it is split over them",
                f"set train.{key} >= {world}",
            )
    if train.strategy in ("fsdp", "deepspeed"):
        raise NLAError(
            f"train.strategy {train.strategy} is not supported yet: the AV generates, and "
            "checkpoints are written, outside Lightning's fit on whole weights, which a "
            "sharding strategy does not gather back (docs/scale_out.md)",
            "use train.strategy=ddp (with LoRA and gradient checkpointing for large targets)",
        )


def lightning_strategy(train: TrainConfig) -> str | Strategy:
    """The Lightning strategy for `train.strategy` (auto: one device, or ddp over several)."""
    name = train.strategy
    if name == "auto":
        name = "ddp" if world_size(train) > 1 else "auto"
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=True)
    return name
