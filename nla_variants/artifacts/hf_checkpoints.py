"""NLA components as ordinary Hugging Face checkpoint directories, and back.

An AV is its language model (`av.lm`) plus, for some variants, tensors of its own (the multitoken
AV's slot maps); a transformer AR is a truncated copy of the target (`ar.backbone`: the blocks up
to the extraction layer, no final norm) plus its head. Each is written as a directory that
`from_pretrained` loads (config.json, model.safetensors, tokenizer), with the component's own
tensors beside it (`component.safetensors`). LoRA is merged into the weights, or, for the AV,
kept as a PEFT adapter over the target (`adapter_config.json`, `adapter_model.safetensors`).

Loading rebuilds the variant from its recorded config with the directory as its model source,
then loads the component's own tensors: a checkpoint is only ever config files and safetensors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj
from nla_variants.target import ModelSource, config_dims, decoder_blocks
from nla_variants.variants.registry import BuildContext, build

OWN_TENSORS = "component.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def lm_part(component: nn.Module) -> tuple[str, nn.Module] | None:
    """(attribute, module) of the component's transformer: `lm` for an AV, `backbone` for a
    transformer AR; None for a component without one (the flowchart AR)."""
    for name in ("lm", "backbone"):
        module = getattr(component, name, None)
        if isinstance(module, nn.Module):
            return name, module
    return None


def has_lora(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in module.modules())


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base layer, in place, and unwrap a PEFT model: the
    result has the plain architecture's parameter names."""
    from peft.tuners.lora import LoraLayer

    for name, sub in list(module.named_modules()):
        if isinstance(sub, LoraLayer):
            sub.merge()
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, sub.get_base_layer())
    return module.get_base_model() if hasattr(module, "get_base_model") else module


def own_tensors(component: nn.Module) -> dict[str, torch.Tensor]:
    """The component's tensors outside its transformer (heads, slot maps), by name."""
    part = lm_part(component)
    skip = f"{part[0]}." if part else None
    return {
        k: v.detach().float().contiguous().cpu()
        for k, v in component.state_dict().items()
        if not (skip and k.startswith(skip))
    }


def save_own_tensors(component: nn.Module, directory: Path) -> bool:
    tensors = own_tensors(component)
    if tensors:
        save_file(tensors, directory / OWN_TENSORS)
    return bool(tensors)


def load_own_tensors(component: nn.Module, directory: Path) -> None:
    """Load `component.safetensors` into the component; every own tensor must be there."""
    path = directory / OWN_TENSORS
    expected = set(own_tensors(component))
    tensors = load_file(path) if path.is_file() else {}
    if set(tensors) != expected:
        missing, unknown = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise NLAError(
            f"{path} does not match the component (missing {missing[:3]}, unexpected "
            f"{unknown[:3]})",
            "export the NLA again: its files were changed or mixed up",
        )
    with torch.no_grad():
        component.load_state_dict(tensors, strict=False)


def save_lm_dir(lm: nn.Module, tokenizer: Any, directory: Path) -> None:
    """A causal LM (LoRA already merged) as a from_pretrained directory."""
    lm.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def save_adapter_dir(lm: nn.Module, tokenizer: Any, directory: Path, base: str) -> None:
    """A PEFT model's adapter (not the base weights) as a standard PEFT directory whose
    `base_model_name_or_path` names the target."""
    for cfg in lm.peft_config.values():
        cfg.base_model_name_or_path = base
    lm.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _truncated_config(config: Any, n_blocks: int) -> Any:
    config = copy.deepcopy(config)
    config.num_hidden_layers = n_blocks
    for attr in ("layer_types", "sliding_window_pattern", "no_rope_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, list | tuple) and len(value) > n_blocks:
            setattr(config, attr, type(value)(value[:n_blocks]))
    return config


def blocks_of(backbone: nn.Module) -> int:
    return len(decoder_blocks(backbone))


def save_backbone_dir(backbone: nn.Module, tokenizer: Any, directory: Path) -> None:
    """An AR's truncated decoder (LoRA already merged) as a causal-LM directory with
    `num_hidden_layers` = its blocks. The AR reads the residual, not the final norm: the norm is
    stored as ones so that from_pretrained finds a complete model."""
    from transformers import AutoModelForCausalLM

    config = _truncated_config(backbone.config, blocks_of(backbone))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    decoder = skeleton.get_decoder()
    prefix = next(name for name, m in skeleton.named_modules() if m is decoder)
    state = {
        f"{prefix}.{k}": v.detach().contiguous().cpu() for k, v in backbone.state_dict().items()
    }
    for name, value in skeleton.state_dict().items():
        if name.startswith(f"{prefix}.") and name not in state:
            state[name] = torch.ones(value.shape, dtype=torch.float32)  # the unused final norm
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def dir_source(directory: Path, num_layers: int, d_model: int) -> ModelSource:
    """A ModelSource for an exported component directory (weights identified by file sizes and
    the config, as for any local checkpoint)."""
    files = sorted((p.name, p.stat().st_size) for p in directory.iterdir() if p.is_file())
    fingerprint = "export:" + hash_obj([str(directory.name), files])
    path = str(directory.resolve())
    return ModelSource(path, "local", path, fingerprint, num_layers, d_model)


def hf_layers(directory: Path) -> int:
    """How many decoder blocks a saved component directory's config.json holds (none without
    one: a tokenizer-only component)."""
    config = directory / "config.json"
    return config_dims(json.loads(config.read_text()))[0] if config.is_file() else 0


def directory_context(directory: Path, layer: int, d_model: int, **stats: Any) -> BuildContext:
    """The context a component saved as a transformers directory (an export's, a release's) is
    rebuilt in: its own blocks are the source; `stats` are the training statistics saved beside
    it (`data_mean`, `data_std`)."""
    source = dir_source(directory, hf_layers(directory), d_model)
    return BuildContext(source, layer, d_model, **stats)


def build_component(kind: str, section: dict[str, Any], ctx: BuildContext) -> nn.Module:
    """Build a variant quietly (transformers' notes about the unused final norm or LM head of a
    truncated checkpoint are expected here)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return build(kind, section, ctx)
    finally:
        hf_logging.set_verbosity(level)


def load_adapter(component: nn.Module, directory: Path) -> None:
    """Load a PEFT adapter directory's weights into the component's freshly built LoRA."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(component.lm, load_file(directory / ADAPTER_WEIGHTS))
    if result.unexpected_keys:
        raise NLAError(
            f"{directory / ADAPTER_WEIGHTS} does not match the AV's LoRA "
            f"(unexpected {sorted(result.unexpected_keys)[:3]})",
            "export the NLA again with the same AV config",
        )
