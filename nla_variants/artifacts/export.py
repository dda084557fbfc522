"""`nla export`: a trained NLA as a directory that travels, and loading it back.

Layout (`--layout nla_variants`, the default):
  OUT/nla.yaml              the sidecar: target model and fingerprint, layer and convention,
                            vectors (activations or a diff), placeholder token and neighbours, the
                            rendered AV prompt, prompt templates, injection settings, both
                            variants and their configs, teacher, dataset provenance, metrics
  OUT/context.safetensors   training statistics: data_mean, data_std (injection centring) and
                            train_mean (the mean training direction, the FVE baseline)
  OUT/av/                   the AV as a Hugging Face checkpoint (LoRA merged), or a PEFT adapter
                            over the target (`--lora adapter`); tokenizer; component.safetensors
  OUT/ar/                   the AR's truncated transformer as a Hugging Face checkpoint, tokenizer,
                            its head in component.safetensors
  OUT/README.md             the model card: training data, recipe, evaluation table
`--layout public` writes the public NLA release layout instead (`nla_variants.artifacts.public_layout`).

Loading verifies the sidecar against the live tokenizer, so a drifted placeholder or neighbour is
a one-line error rather than an AV that reads the placeholder's own embedding.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from nla_variants import __version__
from nla_variants.artifacts.hf_checkpoints import (
    build_component,
    directory_context,
    has_lora,
    lm_part,
    load_adapter,
    load_own_tensors,
    merge_lora,
    save_adapter_dir,
    save_backbone_dir,
    save_lm_dir,
    save_own_tensors,
)
from nla_variants.common.errors import NLAError
from nla_variants.common.io import atomic_dir
from nla_variants.common.masking import mask_tree
from nla_variants.common.schema import ExportSidecar, ReleaseSidecar
from nla_variants.target import (
    EMBEDDED,
    EMBEDDED_NAME,
    LAYER_CONVENTION,
    release_layer_index,
    resolve_model,
)
from nla_variants.variants.pair import NLA, NLARef
from nla_variants.variants.registry import BuildContext

log = logging.getLogger(__name__)

FORMAT = ExportSidecar.FORMAT
VERSION = ExportSidecar.VERSION
SIDECAR = ExportSidecar.FILE
CONTEXT = "context.safetensors"
MARKERS = (SIDECAR, ReleaseSidecar.FILE)  # an existing OUT holding one of these may be replaced


def check_out_dir(out: Path) -> None:
    """OUT is new, empty, or an earlier export (replaced); anything else is refused, so an
    export never deletes a directory it did not write."""
    from nla_variants.checks import check_writable_dir

    check_writable_dir(out.parent, "the output directory's parent")
    if not out.exists():
        return
    if not out.is_dir():
        raise NLAError(f"{out} is a file", "pass a new directory for the export")
    known = any((out / m).is_file() or any(out.glob(f"*/{m}")) for m in MARKERS)
    if any(out.iterdir()) and not known:
        raise NLAError(f"{out} exists and is not an NLA export", "pass a new or empty directory")


def share(root: Path) -> None:
    """Give the export the permissions of any new file (temp directories and some writers use
    owner-only modes), so a shared copy is readable."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def portable_config(component: torch.nn.Module, merged: bool) -> dict[str, Any]:
    """The component's config as it is rebuilt from the export: merged LoRA becomes a full
    model, the injection norm is the resolved number, the placeholder is pinned."""
    cfg = component.cfg.model_dump(mode="json")
    if merged and cfg.get("finetune") == "lora":
        cfg["finetune"] = "full"
    if "injection" in cfg and getattr(component, "scale", None) is not None:
        cfg["injection"]["scale"] = float(component.scale)
    if "placeholder" in cfg:
        cfg["placeholder"] = component.placeholder.text
    return cfg


def _context_tensors(nla: NLA) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("data_mean", "data_std"):
        value = getattr(nla.av, name, None)
        if value is not None:
            out[name] = value.detach().float().cpu().contiguous()
    if nla.train_mean is not None:
        out["train_mean"] = nla.train_mean.detach().float().cpu().contiguous()
    return out


def _write_av(nla: NLA, directory: Path, lora: str) -> dict[str, Any]:
    av = nla.av
    directory.mkdir()
    keep_adapter = lora == "adapter" and hasattr(av.lm, "peft_config")
    if keep_adapter:
        save_adapter_dir(av.lm, av.tokenizer, directory, nla.ref.target)
    else:
        av.lm = merge_lora(av.lm)
        save_lm_dir(av.lm, av.tokenizer, directory)
    save_own_tensors(av, directory)
    return {
        "dir": directory.name,
        "weights": "adapter" if keep_adapter else "merged",
        "variant": av.variant_name,
        "config": portable_config(av, merged=not keep_adapter),
        "metadata": av.metadata(),
        "prompt_ids": [int(i) for i in av.prompt_ids.tolist()],
    }


def _write_ar(nla: NLA, directory: Path) -> dict[str, Any] | None:
    ar = nla.ar
    if ar is None:
        return None
    directory.mkdir()
    part = lm_part(ar)
    if part is not None:
        name, module = part
        if has_lora(module):
            setattr(ar, name, merge_lora(module))
        save_backbone_dir(getattr(ar, name), ar.tokenizer, directory)
    else:
        nla.av.tokenizer.save_pretrained(directory)  # a tokenizer-only component (flowchart)
    save_own_tensors(ar, directory)
    return {
        "dir": directory.name,
        "variant": ar.variant_name,
        "config": portable_config(ar, merged=True),
        "metadata": ar.metadata(),
    }


def export_sidecar(nla: NLA, av: dict, ar: dict | None) -> dict[str, Any]:
    ref = nla.ref
    cfg = av["config"]
    return mask_tree(
        {
            "format": FORMAT,
            "version": VERSION,
            "created_by": f"nla_variants {__version__}",
            "source": {"kind": ref.kind, "name": ref.path.name, "weights": nla.note},
            "target": {
                "model": ref.target,
                "name": EMBEDDED_NAME if ref.target == EMBEDDED else ref.target,
                "fingerprint": ref.target_fingerprint,
            },
            "layer": ref.layer,
            "layer_convention": LAYER_CONVENTION,
            "public_layer_index": release_layer_index(ref.layer),
            "d_model": nla.d_model,
            "vectors": "diff" if ref.diff_model else "activations",
            "diff_model": ref.diff_model,
            "tokenization": {"add_bos": ref.add_bos},
            "placeholder": av["metadata"].get("placeholder"),
            "prompt_templates": {
                "av_system": cfg.get("system"),
                "av_prompt": cfg.get("prompt"),
                "ar": (ar or {}).get("config", {}).get("template"),
            },
            "injection": av["metadata"].get("injection"),
            "context": {"file": CONTEXT, "tensors": sorted(_context_tensors(nla))},
            "av": av,
            "ar": ar,
            "teacher": nla.teacher,
            "data": nla.data,
            "metrics": nla.metrics,
            "recipe": nla.ref.detail.get("recipe") or _recipe(nla.ref),
        }
    )


def _recipe(ref: NLARef) -> dict[str, Any] | None:
    """The run's training settings, as its config.yaml states them."""
    cfg = ref.detail.get("config")
    if cfg is None:
        return None
    return {k: cfg.raw[k] for k in ("seed", "av", "ar", "train", "eval") if k in cfg.raw}


def export_nla(nla: NLA, out: Path, lora: str = "merge") -> Path:
    """Write `nla` to `out` in this project's layout (atomically: a temp dir, then renamed)."""
    from nla_variants.artifacts.model_card import write_model_card

    check_out_dir(out)
    with atomic_dir(out, replace=True) as tmp:
        av = _write_av(nla, tmp / "av", lora)
        ar = _write_ar(nla, tmp / "ar")
        context = _context_tensors(nla)
        if context:
            save_file(context, tmp / CONTEXT)
        sidecar = export_sidecar(nla, av, ar)
        ExportSidecar.parse(sidecar, out / SIDECAR)  # nothing a reader would refuse
        (tmp / SIDECAR).write_text(yaml.safe_dump(sidecar, sort_keys=False, allow_unicode=True))
        write_model_card(tmp / "README.md", sidecar)
        share(tmp)
    return out


# -- loading --------------------------------------------------------------------------------


def locate_export(root: Path) -> NLARef:
    side = ExportSidecar.read(root)
    for part in (side.av, side.ar):
        if part and not (root / part.dir).is_dir():
            raise NLAError(f"{root} has no {part.dir}/ directory", "export it again")
    return NLARef(
        "export",
        root,
        side.target.model,
        side.layer,
        diff_model=side.diff_model,
        add_bos=side.add_bos,
        target_fingerprint=side.target.fingerprint,
        detail={"sidecar": side, "recipe": side.recipe},
    )


def verify_placeholder(tokenizer: Any, cfg: dict, recorded: dict, n_slots: int, where: str) -> None:
    """The recorded placeholder must be what the live tokenizer makes of the recorded prompt:
    the same single token id, between the same neighbours."""
    from nla_variants.variants.av.baseline import choose_placeholder

    text = recorded["text"]
    want = (recorded["token_id"], recorded["left_id"], recorded["right_id"])
    try:
        found, _ = choose_placeholder(tokenizer, cfg["system"], cfg["prompt"], n_slots, text)
        got = (found.token_id, found.left_id, found.right_id)
    except RuntimeError:
        got = tuple(tokenizer.encode(text, add_special_tokens=False))
    if got != want:
        raise NLAError(
            f"{where}: placeholder {text!r} should be token {want[0]} between {want[1]} and "
            f"{want[2]}, but the tokenizer gives {list(got)}",
            "use the tokenizer and sidecar the NLA was exported with (one of them was changed)",
        )


def _context(root: Path, side: ExportSidecar) -> dict[str, torch.Tensor]:
    path = root / side.context.get("file", CONTEXT)
    return load_file(path) if path.is_file() else {}


def load_export(ref: NLARef) -> NLA:
    from transformers import AutoTokenizer

    root, side = ref.path, ref.detail["sidecar"]
    stats = _context(root, side)
    d = side.d_model
    spec = side.av
    av_dir = root / spec.dir
    verify_placeholder(
        AutoTokenizer.from_pretrained(av_dir),
        spec.config,
        spec.metadata["placeholder"],
        int(spec.metadata.get("n_slots", 1)),
        f"{root / SIDECAR}",
    )
    data_stats = {k: stats[k] for k in ("data_mean", "data_std") if k in stats}
    if spec.weights == "adapter":
        source = resolve_model(ref.target)
        if ref.target_fingerprint and source.fingerprint != ref.target_fingerprint:
            raise NLAError(
                f"the AV adapter in {av_dir} needs {ref.target}, which has changed",
                "export the NLA with --lora merge",
            )
        ctx = BuildContext(source, ref.layer, d, **data_stats)
    else:
        ctx = directory_context(av_dir, ref.layer, d, **data_stats)
    av = build_component("av", {"variant": spec.variant, **spec.config}, ctx)
    if spec.weights == "adapter":
        load_adapter(av, av_dir)
    load_own_tensors(av, av_dir)
    if [int(i) for i in av.prompt_ids.tolist()] != spec.prompt_ids:
        raise NLAError(
            f"{root / SIDECAR}: the AV prompt tokenises differently from when it was exported",
            "use the tokenizer the NLA was exported with",
        )
    ar = None
    if side.ar:
        ar_dir = root / side.ar.dir
        ctx = directory_context(ar_dir, ref.layer, d, **data_stats)
        ar = build_component("ar", {"variant": side.ar.variant, **side.ar.config}, ctx)
        load_own_tensors(ar, ar_dir)
    return NLA(
        av,
        ar,
        ref,
        mean=stats.get("train_mean"),
        teacher=side.teacher,
        metrics=dict(side.metrics),
        data=side.data,
        note=side.weights,
    )
