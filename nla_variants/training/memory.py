"""Fitting large targets (7B-70B) on a device: LoRA by size (`finetune: auto`), gradient
checkpointing, frozen weights held in bf16, and a memory estimate checked before anything loads.

The estimate is rough by design (it has to be known before a weight is read): parameters come
from the target's config.json (`ModelShape`), activations from batch x sequence x d_model x
layers. Its job is to turn "CUDA out of memory" after an hour of extraction and a warm start into
one line at the start that says which knob to turn.

Data parallelism (`train.strategy`): ddp (and `auto` with several processes) replicates the
weights, gradients and AdamW state on every device, plus one more copy of the gradients in its
communication buckets; only the batch, hence the activations, is split. fsdp and deepspeed shard
weights, gradients and optimiser state over all devices (counted here as divided evenly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nla_variants.common.errors import NLAError
from nla_variants.config import TrialConfig
from nla_variants.target import resolve_model, resolve_precision
from nla_variants.variants.interfaces import DeclaresMemory
from nla_variants.variants.large_models import (
    LORA_AUTO_THRESHOLD,
    ModelShape,
    target_shape,
)

GIB = 1024**3
_CHAT_OVERHEAD_TOKENS = 16  # a chat template's role markers around the AV prompt


# -- the memory estimate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device at the trial's peak stage (`stage`), split three ways."""

    weights: int
    optimiser: int  # gradients + AdamW state (+ ddp's gradient buckets)
    activations: int
    stage: str
    world_size: int = 1
    processes_per_node: int = 1
    stages: dict[str, int] = field(default_factory=dict)  # each stage's total
    finetune: dict[str, str] = field(default_factory=dict)  # resolved AV/AR choices

    @property
    def total(self) -> int:
        return self.weights + self.optimiser + self.activations

    def line(self) -> str:
        """The one line printed at the start of a trial."""
        gib = [x / GIB for x in (self.total, self.weights, self.optimiser, self.activations)]
        return (
            f"this trial needs about {gib[0]:.1f} GiB per device (weights {gib[1]:.1f}, "
            f"optimiser {gib[2]:.1f}, activations {gib[3]:.1f} GiB; peak: {self.stage})"
        )


def _tokens(text: str) -> int:
    return len(text) // 4 + 1  # ~4 characters a token: a rough count without a tokenizer


def _activation_bytes_per_token(
    shape: ModelShape, layers: int, dtype_bytes: int, ckpt: bool
) -> int:
    """Saved for the backward pass per token: per block about 8 d + 4 d_ff values (norm, q/k/v,
    attention output, MLP in/out) plus the fp32 norm inputs; under checkpointing only each
    block's fp32 input, plus one block's worth while it is recomputed."""
    d = shape.d_model
    block = dtype_bytes * (8 * d + 4 * shape.d_ff) + 8 * d
    return layers * 4 * d + block if ckpt else layers * block


def estimate_trial_memory(
    cfg: TrialConfig,
    num_params: int,
    shape: ModelShape,
    device: torch.device | str = "cuda",
) -> MemoryEstimate:
    """Bytes per device of the trial's most demanding stage: the target for extraction, the AV
    warm start, the AR warm start (the warm AV stays on the device) or RL (AV, AR and the frozen
    reference AV). `num_params`: the target's total (it sets the per-block size); `shape`: its
    dims (`target_shape`)."""
    device = torch.device(device)
    tr = cfg.train
    world = tr.devices * tr.num_nodes
    sharded = tr.strategy in ("fsdp", "deepspeed")
    precision = {"auto": "auto", "bf16-mixed": "bf16"}.get(tr.precision, "fp32")
    act_b = 2 if resolve_precision(precision, device) == torch.bfloat16 else 4
    frozen_b = act_b  # frozen_weight_dtype: bf16 under bf16-mixed
    ckpt = tr.gradient_checkpointing
    d, big = shape.d_model, num_params > LORA_AUTO_THRESHOLD
    embed = shape.embedding_params
    per_block = max(0, num_params - embed * (1 if shape.tied else 2)) / shape.layers

    def state(trainable: float, frozen: float, frozen_embed: float = 0.0) -> tuple[float, float]:
        """(weights, gradients + AdamW) bytes of one component on one device; trainable weights
        are fp32 masters, frozen ones as `hold_frozen_weights` keeps them (embeddings fp32)."""
        weights = 4 * trainable + frozen_b * (frozen - frozen_embed) + 4 * frozen_embed
        opt = 12 * trainable + (4 * trainable if world > 1 and not sharded else 0)
        return (weights / world, opt / world) if sharded else (weights, opt)

    # the AV: the whole target, fully or as LoRA adapters
    av = cfg.av.config
    av_ft = getattr(av, "finetune", "full")
    av_ft = ("lora" if big else "full") if av_ft == "auto" else av_ft
    frozen_blocks = getattr(av, "frozen_blocks", 0)
    if av_ft == "lora":
        av_train = shape.lora_block_params(getattr(av, "lora_r", 16)) * shape.layers
        av_frozen, av_frozen_embed = float(num_params), float(embed)
    else:
        av_frozen_embed = float(embed if frozen_blocks else 0)
        av_frozen = frozen_blocks * per_block + av_frozen_embed
        av_train = num_params - av_frozen
    av_w, av_opt = state(av_train, av_frozen, av_frozen_embed)
    slots = getattr(av, "k", 1)
    prompt = _tokens(getattr(av, "system", "") + getattr(av, "prompt", "")) + slots
    prompt += _CHAT_OVERHEAD_TOKENS
    av_layers = shape.layers - (frozen_blocks if av_ft != "lora" else 0)
    av_tok = _activation_bytes_per_token(shape, av_layers, act_b, ckpt)
    logit_b = 12 * shape.vocab  # bf16 logits, their fp32 copy and log-softmax, its gradient

    def av_act(rows: int, response: int) -> float:
        return rows * ((prompt + response) * av_tok + response * logit_b)

    # the AR: the target's first blocks plus a d x d head, unless it says otherwise
    ar = cfg.ar.config
    ar_ft = getattr(ar, "finetune", "full")
    ar_ft = ("lora" if big else "full") if ar_ft == "auto" else ar_ft
    n_blocks = getattr(ar, "n_layers", None) or cfg.data.target.layer
    if isinstance(ar, DeclaresMemory):
        own = ar.memory_shape(shape)
        ar_train, ar_frozen, ar_embed = own.trainable, own.frozen, own.frozen_embedding
        n_blocks = own.blocks
    else:
        backbone = embed + n_blocks * per_block
        head = d * d + d
        ar_embed = float(embed)
        if ar_ft == "lora":
            ar_train = shape.lora_block_params(getattr(ar, "lora_r", 8)) * n_blocks + head
            ar_frozen = backbone
        elif ar_ft == "head":
            ar_train, ar_frozen = head, backbone
        else:
            ar_train, ar_frozen, ar_embed = backbone + head, 0.0, 0.0
    ar_w, ar_opt = state(ar_train, ar_frozen, ar_embed)
    template = _tokens(getattr(ar, "template", "")) + getattr(ar, "max_source_tokens", 0)
    ar_tok = _activation_bytes_per_token(shape, n_blocks, act_b, ckpt)

    def ar_act(rows: int, explanation: int) -> float:
        return rows * (template + explanation) * ar_tok

    def per_device(batch: int) -> int:
        return math.ceil(batch / world)

    kv_b = 2 * shape.layers * shape.kv_heads * shape.head_dim * act_b  # K and V per token
    stages: dict[str, tuple[float, float, float]] = {}
    extract_tok = cfg.data.target.max_batch_tokens * act_b * (4 * d + 2 * shape.d_ff)
    stages["extraction"] = (4.0 * num_params, 0.0, float(extract_tok))
    av_rows = per_device(tr.av_sft.batch_size)
    stages["AV warm start"] = (av_w, av_opt, av_act(av_rows, av.max_response_tokens))
    ar_rows = per_device(tr.ar_sft.batch_size)
    act = ar_act(ar_rows, getattr(ar, "max_explanation_tokens", 128))
    stages["AR warm start"] = (av_w + ar_w, ar_opt, act)
    rl = tr.rl
    if rl.steps:
        rows = per_device(rl.batch_size) * rl.group_size
        resp = rl.max_response_tokens
        ref_w, _ = state(0.0, av_frozen + av_train, float(embed))  # a frozen copy of the AV
        act = max(rows * (prompt + resp) * kv_b, av_act(rows, resp), ar_act(rows, resp))
        opt = av_opt + (ar_opt if rl.train_ar else 0.0)
        stages["RL"] = (av_w + ar_w + ref_w, opt, act)
    peak = max(stages, key=lambda s: sum(stages[s]))
    w, o, a = stages[peak]
    return MemoryEstimate(
        weights=int(w),
        optimiser=int(o),
        activations=int(a),
        stage=peak,
        world_size=world,
        processes_per_node=tr.devices,
        stages={s: int(sum(v)) for s, v in stages.items()},
        finetune={"av": av_ft, "ar": ar_ft},
    )


def estimate_for_trial(cfg: TrialConfig, device: torch.device | str) -> MemoryEstimate:
    """The estimate for a trial config's target, sized from its config.json (no weights)."""
    shape = target_shape(resolve_model(cfg.data.target.model))
    return estimate_trial_memory(cfg, shape.num_params, shape, device)


def available_ram() -> int:
    """Bytes of RAM available to new allocations (psutil, else /proc/meminfo)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise NLAError("cannot read the available memory", "install psutil")


def check_fits(
    estimate: MemoryEstimate, device: torch.device | str, available: int | None = None
) -> None:
    """Raise a one-line NLAError when the estimate cannot fit: on CUDA against the device's free
    memory, on CPU against the available RAM, which every process of this node shares.
    `available`: bytes to compare with instead of asking the device (tests)."""
    device = torch.device(device)
    need = estimate.total
    if device.type == "cuda":
        where = (
            f"{device} ({torch.cuda.get_device_name(device)})" if available is None else str(device)
        )
        if available is None:
            available, _ = torch.cuda.mem_get_info(device)
    else:
        where = "this machine's RAM"
        need *= estimate.processes_per_node
        available = available_ram() if available is None else available
    if need <= available:
        return
    fixes = []
    if "full" in estimate.finetune.values():
        fixes.append("LoRA (av.finetune / ar.finetune: lora)")
    fixes += ["train.gradient_checkpointing: true", "smaller batch sizes"]
    if estimate.world_size > 1:
        fixes.append("train.strategy: fsdp")
    raise NLAError(
        f"{estimate.line()}, more than the {available / GIB:.1f} GiB free on {where}",
        "use " + ", ".join(fixes) + ", or a larger device",
    )
