"""Holding a large target (7B-70B) on a device: its size read from config.json without loading
it (`ModelShape`), LoRA by size (`finetune: auto`), gradient checkpointing, and frozen weights
held in bf16. Imported by the variants and the registry, so it imports no config.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.target import ModelSource, read_model_config

# `finetune: auto` trains LoRA adapters above this many target parameters, else the full model:
# below ~1B a full fine-tune fits one 80 GB device with room to spare and learns more per step;
# above it the 16 bytes per parameter of fp32 weights, gradients and AdamW state do not.
LORA_AUTO_THRESHOLD = 1_000_000_000
_NOT_GATED = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "gpt_bigcode"}


# -- the target's size, from its config ------------------------------------------------------------


@dataclass(frozen=True)
class ComponentMemory:
    """What a component holds and runs, as the memory estimate sizes it: its trainable and
    frozen parameters (of them, the frozen embedding, which stays fp32) and the target blocks it
    runs per token (their activations)."""

    trainable: float
    frozen: float = 0.0
    frozen_embedding: float = 0.0
    blocks: int = 0


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs of a decoder-only LM, read from its config.json."""

    vocab: int
    d_model: int
    layers: int
    d_ff: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = True
    gated: bool = True  # SwiGLU-style MLP: three matrices instead of two
    experts: int = 1

    @classmethod
    def from_config(cls, cfg: dict) -> ModelShape:
        def first(*keys: str, default: int | None = None) -> int:
            for k in keys:
                if cfg.get(k) is not None:
                    return int(cfg[k])
            if default is None:
                raise NLAError(
                    f"the model config has none of {', '.join(keys)}",
                    "use a decoder-only Hugging Face model with a standard config.json",
                )
            return default

        d = first("hidden_size", "n_embd", "d_model")
        heads = first("num_attention_heads", "n_head")
        return cls(
            vocab=first("vocab_size"),
            d_model=d,
            layers=first("num_hidden_layers", "n_layer", "num_layers"),
            d_ff=first("intermediate_size", "n_inner", "ffn_dim", default=4 * d),
            heads=heads,
            kv_heads=first("num_key_value_heads", default=heads),
            head_dim=first("head_dim", default=d // heads),
            tied=bool(cfg.get("tie_word_embeddings", True)),
            gated=cfg.get("model_type") not in _NOT_GATED,
            experts=first("num_local_experts", "num_experts", default=1),
        )

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.d_model

    def block_params(self) -> int:
        d, a, kv = self.d_model, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = 2 * d * a + 2 * d * kv
        mlp = (3 if self.gated else 2) * d * self.d_ff * self.experts
        return attention + mlp + 2 * d

    @property
    def num_params(self) -> int:
        head = 0 if self.tied else self.embedding_params
        return self.embedding_params + head + self.layers * self.block_params() + self.d_model

    def lora_block_params(self, r: int) -> int:
        """LoRA adapters of rank r on every linear of one block (peft's `all-linear`)."""
        d, a, kv, ff = (
            self.d_model,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
            self.d_ff,
        )
        mlp = ((2 if self.gated else 1) * (d + ff) + (ff + d)) * self.experts
        return r * ((d + a) + 2 * (d + kv) + (a + d) + mlp)


@cache
def target_shape(source: ModelSource) -> ModelShape:
    """The shape of a resolved target, from its config alone (no weights are read)."""
    return ModelShape.from_config(read_model_config(source))


def resolve_finetune(requested: str, source: ModelSource) -> str:
    """`auto` -> `lora` for a target above LORA_AUTO_THRESHOLD parameters, else `full`; any other
    choice as given. Components store the result in their config, so a checkpoint records what
    was built and a reload (or an export) does not depend on the threshold."""
    if requested != "auto":
        return requested
    return "lora" if target_shape(source).num_params > LORA_AUTO_THRESHOLD else "full"


# -- attention kernel ----------------------------------------------------------------------------


def train_attention(component: nn.Module, device: torch.device | str) -> int:
    """Train with transformers' eager attention on a CPU; returns the models switched.

    Why: on a CPU, SDPA's flash kernel takes about ten times its forward time in the backward
    pass, a quarter of an AV step. Our sequences are short (a prompt and an explanation, tens to
    a hundred-odd tokens), so eager attention's plain bf16 matmuls and fp32 softmax are faster:
    an AV step at the baseline's frozen set went from 4.3-4.7 s to 3.3 s (benchmarks/peer.py).
    CUDA keeps SDPA."""
    if torch.device(device).type != "cpu":
        return 0
    from transformers import PreTrainedModel

    switched = 0
    for module in component.modules():
        if isinstance(module, PreTrainedModel) and module.config._attn_implementation == "sdpa":
            module.set_attn_implementation("eager")
            switched += 1
    return switched


# -- gradient checkpointing ------------------------------------------------------------------------


def enable_gradient_checkpointing(component: nn.Module) -> bool:
    """Turn on Hugging Face gradient checkpointing (non-reentrant) in every transformers model
    inside an AV/AR component (the AV's `lm`, under peft too; the AR's truncated backbone).
    Returns whether there was one (a flowchart AR has none).

    A block with a forward pre-hook (the AV's injection site) stays un-checkpointed: transformers
    versions that checkpoint a block's `__call__` would replay the hook in the backward pass,
    when the injector is no longer armed, and recompute a forward without the vector (wrong
    gradients, silently). That costs one block's activations."""
    from transformers import PreTrainedModel

    covered: set[int] = set()
    found = False
    for module in component.modules():
        if id(module) in covered or not isinstance(module, PreTrainedModel):
            continue
        covered.update(id(m) for m in module.modules())
        if not module.supports_gradient_checkpointing:
            raise NLAError(
                f"{type(module).__name__} does not support gradient checkpointing",
                "set train.gradient_checkpointing: false",
            )
        kwargs = {"use_reentrant": False}
        if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5
            module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        found = True
    for module in component.modules():
        if getattr(module, "gradient_checkpointing", False) and module._forward_pre_hooks:
            module.gradient_checkpointing = False
    return found


# -- frozen weights in bf16 ------------------------------------------------------------------------


def frozen_weight_dtype(device: torch.device | str, trainer_precision: str) -> torch.dtype | None:
    """The dtype a component's frozen weights are held in: bf16 under bf16-mixed (autocast casts
    them to bf16 at every forward anyway, so the matmuls are bit-identical, without the cast),
    else None (as loaded, fp32). `device` is kept for callers; CPU and CUDA now agree."""
    del device
    return torch.bfloat16 if trainer_precision.startswith("bf16") else None


def hold_frozen_weights(component: nn.Module, dtype: torch.dtype | None) -> int:
    """Cast the frozen weights and biases of every `nn.Linear` (a LoRA base layer, a frozen
    block, a frozen RL reference) to `dtype`; returns the number of elements cast.

    Why only these: under bf16 autocast (Lightning's bf16-mixed) every Linear casts its fp32
    weight to bf16 on every forward anyway, so holding a frozen one in bf16 gives bit-identical
    matmuls at half the memory and without the per-step cast. Trainable weights stay fp32: they
    are the master weights bf16-mixed updates, and a bf16 master weight would drop updates
    smaller than its 8-bit mantissa. Embeddings, norms and a weight tied to an embedding stay
    fp32 too: autocast does not cast them, so bf16 would change the residual stream. Call it
    only for components whose every forward runs under bf16 autocast."""
    if dtype is None:
        return 0
    elsewhere = {
        id(p)
        for m in component.modules()
        if not isinstance(m, nn.Linear)
        for p in m.parameters(recurse=False)
    }
    cast = 0
    for module in component.modules():
        if not isinstance(module, nn.Linear):
            continue
        for p in module.parameters(recurse=False):
            if not p.requires_grad and p.dtype != dtype and id(p) not in elsewhere:
                p.data = p.data.to(dtype)
                cast += p.numel()
    return cast


@contextmanager
def head_cast_once(model: nn.Module) -> Iterator[None]:
    """Within it, a frozen fp32 output head (tied to the input embedding, so `hold_frozen_weights`
    leaves it fp32) is held as a bf16 copy while bf16 autocast is on. Autocast caches the casts of
    weights that require a gradient only, so in decoding it recasts a frozen 49k x 576 head at
    every token, about a sixth of a decode step on a 2-core CPU. The copy is the cast autocast
    makes, so the logits are bit-identical. Anything else (a trainable or already low-precision
    head, an adapter on the head, no autocast): nothing changes."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    device = weight.device.type if weight is not None else "cpu"
    if not (
        type(head) is nn.Linear
        and weight.dtype == torch.float32
        and not weight.requires_grad
        and torch.is_autocast_enabled(device)
        and torch.get_autocast_dtype(device) == torch.bfloat16
    ):
        yield
        return
    low = nn.Linear(head.in_features, head.out_features, bias=head.bias is not None, device="meta")
    low.weight = nn.Parameter(weight.detach().to(torch.bfloat16), requires_grad=False)
    if head.bias is not None:
        low.bias = nn.Parameter(head.bias.detach().to(torch.bfloat16), requires_grad=False)
    model.set_output_embeddings(low)
    try:
        yield
    finally:
        model.set_output_embeddings(head)
