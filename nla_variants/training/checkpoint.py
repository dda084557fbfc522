"""Checkpoints as safetensors + a YAML sidecar; nothing is ever unpickled.

A component checkpoint directory holds:
  weights.safetensors     the component's trainable tensors (all of them for a full fine-tune,
                          the adapters and heads for LoRA; the frozen base comes from the model)
  optimizer.safetensors   optional: optimizer state tensors, keyed state.<param index>.<name>
  context.safetensors     the training statistics the component was built with (data_mean,
                          data_std: an AV's injection centring), so a reload is the same model
  checkpoint.yaml         kind, variant, its config, the base model fingerprint, layer, d_model,
                          variant metadata (placeholder, injection scale), step, optimizer and
                          scheduler scalars
Loading rebuilds the component from its recorded config through the registry, then loads the
tensors, so a checkpoint is only ever as trusted as a YAML file and a safetensors file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.common.io import atomic_dir
from nla_variants.common.schema import CheckpointSidecar
from nla_variants.variants.registry import BuildContext, build

SIDECAR = CheckpointSidecar.FILE
WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.safetensors"
CONTEXT = "context.safetensors"
_STATS = ("data_mean", "data_std")


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (shared tensors, e.g. tied embeddings, stored once)."""
    seen: set[int] = set()
    out = {}
    for name, p in module.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = p.detach().contiguous().cpu()
    return out


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors, scalars = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars["state"].setdefault(str(idx), {})[key] = value
    return tensors, scalars


def _optimizer_state(tensors: dict[str, torch.Tensor], scalars: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entries in scalars.get("state", {}).items():
        state.setdefault(int(idx), {}).update(entries)
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(
    directory: str | Path,
    component: nn.Module,
    kind: str,
    ctx: BuildContext,
    *,
    step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict | None = None,
    replace: bool = True,
) -> Path:
    """Write atomically (temp dir, then rename over any previous checkpoint at `directory`;
    `replace=False` keeps an existing one instead: first writer wins, as a cache wants)."""
    directory = Path(directory)
    with atomic_dir(directory, replace=replace) as tmp:
        save_file(trainable_state(component), tmp / WEIGHTS)
        stats = {
            k: getattr(ctx, k).float().contiguous().cpu()
            for k in _STATS
            if getattr(ctx, k) is not None
        }
        if stats:
            save_file(stats, tmp / CONTEXT)
        meta: dict[str, Any] = {
            "kind": kind,
            "variant": component.variant_name,
            "config": component.cfg.model_dump(mode="json"),
            "model_fingerprint": ctx.source.fingerprint,
            "model_spec": ctx.source.spec,
            "layer": ctx.layer,
            "d_model": ctx.d_model,
            "data_norm": ctx.data_norm,
            "metadata": component.metadata(),
            "step": step,
        }
        if optimizer is not None:
            tensors, scalars = _optimizer_tensors(optimizer)
            save_file(tensors, tmp / OPTIMIZER)
            meta["optimizer"] = scalars
        if scheduler is not None:
            meta["scheduler"] = {
                k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"
            }
        meta.update(extra or {})
        CheckpointSidecar.parse(meta, directory / SIDECAR)  # nothing a reader would refuse
        (tmp / SIDECAR).write_text(yaml.safe_dump(meta, sort_keys=False))
    return directory


def read_sidecar(directory: str | Path) -> CheckpointSidecar:
    return CheckpointSidecar.read(directory)


def load_component(directory: str | Path, ctx: BuildContext) -> tuple[nn.Module, CheckpointSidecar]:
    """Rebuild a component from its checkpoint; the base model must be the recorded one."""
    meta = read_sidecar(directory)
    if meta.model_fingerprint != ctx.source.fingerprint or meta.layer != ctx.layer:
        raise NLAError(
            f"checkpoint {directory} was trained on {meta.model_spec} layer {meta.layer}, "
            f"not {ctx.source.spec} layer {ctx.layer}",
            "use the same target model and layer as the checkpoint",
        )
    stats = load_file(Path(directory) / CONTEXT) if (Path(directory) / CONTEXT).is_file() else {}
    # the norm the component was built with (a checkpoint before it was recorded: the caller's)
    norm = meta.data_norm if "data_norm" in meta.model_fields_set else ctx.data_norm
    ctx = replace(ctx, data_norm=norm, **stats)
    component = build(meta.kind, {"variant": meta.variant, **meta.config}, ctx)
    load_weights(component, Path(directory) / WEIGHTS)
    return component, meta


def rebuilt(component: nn.Module, kind: str, ctx: BuildContext) -> nn.Module:
    """A new component built from `component`'s config with its trainable weights: what saving
    and loading it gives, without the disk (RL's frozen reference on every rank)."""
    config = {"variant": component.variant_name, **component.cfg.model_dump(mode="json")}
    copy = build(kind, config, ctx)
    _copy_weights(copy, trainable_state(component), f"the {kind}")
    return copy


def load_weights(component: nn.Module, path: Path) -> None:
    _copy_weights(component, load_file(path), f"checkpoint {path}")


def _copy_weights(component: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    params = dict(component.named_parameters())
    missing = set(trainable_state(component)) - set(tensors)
    unknown = set(tensors) - set(params)
    if unknown == {"head.bias"} and not missing:
        raise NLAError(
            f"{what} has a head bias, which this {component.variant_name} component's head does "
            "not have (a release AR saved before its head became bias-free)",
            "train it again (its warm-start cache key has changed, so a trial does that)",
        )
    if missing or unknown:
        raise NLAError(
            f"{what} does not match the component "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unknown)[:3]})",
            "load it with the variant and config it was saved with",
        )
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)


def load_optimizer_state(directory: str | Path, optimizer: torch.optim.Optimizer) -> None:
    meta = read_sidecar(directory)
    if meta.optimizer is None:
        raise NLAError(
            f"checkpoint {directory} holds no optimiser state", "resume from a periodic checkpoint"
        )
    tensors = load_file(Path(directory) / OPTIMIZER)
    optimizer.load_state_dict(_optimizer_state(tensors, meta.optimizer))
