"""The public NLA release layout: reading the published NLAs, and writing ours in it.

The release ships each NLA as two Hugging Face directories, an AV ("actor") and an AR
("critic"), each with an `nla_meta.yaml` (`kind: nla_model`): `d_model`, `extraction`
(`injection_scale`, the norm vectors are scaled to; `mse_scale`), `tokens` (the injection
character, its token id and the ids of its two neighbours in the rendered prompt; the AR's
`critic_suffix_ids`), `prompt_templates` (`av` with `{injection_char}`, rendered as the only,
user, message of the chat template; `ar` with `{explanation}`) and the extraction layer index.
The AR directory holds the truncated model (`num_hidden_layers` = K + 1) and
`value_head.safetensors` (a bias-free Linear(d, d)).

Layer convention: the release's layer K is the output of block K, which is this project's
`hidden_states[K + 1]`; the mapping is applied on import and on export.

What the release cannot express is refused on export with the setting and the fix: a residual
injection site, `add` mode, `match` scale, centring, a system message, several placeholder slots,
an AR other than "K + 1 blocks + a Linear head" or one that tokenises its template differently
(pieces, or no BOS where the tokenizer declares one), and a head bias. The release's reader reads
the template with special tokens and refuses a tokenizer that declares BOS without prepending it,
so the exported AR tokenizer prepends a declared BOS, and the files are checked to give the AR's
own token sequences (`nla_variants.variants.testing.ReleaseFormatReader` reads an export by those rules).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from nla_variants import __version__
from nla_variants.artifacts.hf_checkpoints import (
    blocks_of,
    build_component,
    directory_context,
    hf_layers,
    merge_lora,
    own_tensors,
    save_backbone_dir,
    save_lm_dir,
)
from nla_variants.common.errors import NLAError
from nla_variants.common.io import atomic_dir
from nla_variants.common.schema import ReleaseSidecar
from nla_variants.target import layer_from_release, release_layer_index
from nla_variants.variants.ar.release import release_token_ids
from nla_variants.variants.pair import NLA, NLARef

META = ReleaseSidecar.FILE
VALUE_HEAD = "value_head.safetensors"
VALUE_HEAD_BIAS = "value_head_bias.safetensors"  # earlier exports' head bias: refused on load
MAX_RESPONSE_TOKENS = 150  # the release's RL response cap
FIX = "export with --layout nla_variants"


# -- reading ------------------------------------------------------------------------------------


def _pair(path: Path) -> tuple[dict[str, Path], dict[str, ReleaseSidecar]]:
    """role -> directory and its sidecar: `path` holds both (as subdirectories) or is one of
    them, its partner a sibling for the same base model and width."""
    own = (path / META).is_file()
    candidates = [path] if own else []
    candidates += [c for c in sorted((path.parent if own else path).iterdir()) if c.is_dir()]
    dirs: dict[str, Path] = {}
    metas: dict[str, ReleaseSidecar] = {}
    first: tuple | None = None
    for d in candidates:
        if not (d / META).is_file():
            continue
        meta = ReleaseSidecar.read(d)
        key = (meta.base_checkpoint, meta.d_model)
        first = first or key
        if key == first and meta.component not in dirs:
            dirs[meta.component], metas[meta.component] = d, meta
    if "av" not in dirs:
        raise NLAError(f"{path} holds no AV (actor) with an {META}", "pass the NLA's directory")
    return dirs, metas


def _layer_index(metas: dict[str, ReleaseSidecar], dirs: dict[str, Path]) -> int:
    for meta in metas.values():
        if meta.layer_index is not None:
            return meta.layer_index
    if "ar" in dirs and (dirs["ar"] / "config.json").is_file():
        return hf_layers(dirs["ar"]) - 1
    raise NLAError(
        f"{dirs['av'] / META} does not say its extraction layer", "add extraction_layer_index: K"
    )


def locate_public(path: Path) -> NLARef:
    dirs, metas = _pair(path)
    ar = metas.get("ar")
    base = metas["av"].base_checkpoint or (ar.base_checkpoint if ar else None)
    if not base:
        raise NLAError(f"{dirs['av'] / META} names no base_checkpoint", "pass --target MODEL")
    if ar is not None and ar.extraction.mse_scale is None:
        raise NLAError(
            f"{dirs['ar'] / META}: the AR was trained on raw vectors (mse_scale: null)",
            "use an AR trained on normalised vectors; nla_variants scores directions",
        )
    root = path if not (path / META).is_file() else path.parent
    return NLARef(
        "public",
        root,
        str(base),
        layer_from_release(_layer_index(metas, dirs)),
        add_bos=True,  # the release extracts with the tokenizer's special tokens
        detail={"dirs": dirs, "metas": metas},
    )


def _template(meta: ReleaseSidecar, role: str, field: str, slot: str, where: Path) -> str:
    """The sidecar's str.format template for `role` (public or training name) with its one
    field turned into our literal slot."""
    templates = meta.prompt_templates
    template = templates.get(role) or templates.get({"av": "actor", "ar": "critic"}[role])
    try:
        if not isinstance(template, str) or template.count("{" + field + "}") != 1:
            raise ValueError
        return template.format(**{field: slot})
    except (KeyError, IndexError, ValueError):
        raise NLAError(
            f"{where}: prompt_templates.{role} must hold {{{field}}} once and no other field",
            "fix the sidecar",
        ) from None


def _av_section(meta: ReleaseSidecar, where: Path) -> dict[str, Any]:
    prompt = _template(meta, "av", "injection_char", "{placeholder}", where)
    return {
        "variant": "baseline",
        "system": "",  # the release renders the prompt as the only, user, message
        "prompt": prompt,
        "placeholder": meta.tokens.injection_char,
        "injection": {
            "site": "embedding",
            "mode": "replace",
            "scale": meta.injection_scale(where),
            "center": "none",
        },
        "finetune": "full",
        "max_response_tokens": MAX_RESPONSE_TOKENS,
    }


def _recorded_placeholder(meta: ReleaseSidecar) -> dict[str, Any]:
    t = meta.tokens
    return {
        "text": t.injection_char,
        "token_id": t.injection_token_id,
        "left_id": t.injection_left_neighbor_id,
        "right_id": t.injection_right_neighbor_id,
    }


def load_public(ref: NLARef) -> NLA:
    from transformers import AutoTokenizer

    from nla_variants.artifacts.export import verify_placeholder

    dirs, metas = ref.detail["dirs"], ref.detail["metas"]
    meta, av_dir = metas["av"], dirs["av"]
    d = meta.d_model
    section = _av_section(meta, av_dir / META)
    verify_placeholder(
        AutoTokenizer.from_pretrained(av_dir),
        section,
        _recorded_placeholder(meta),
        1,
        str(av_dir / META),
    )
    ctx = directory_context(av_dir, ref.layer, d)
    av = build_component("av", section, ctx)
    ar = _load_release_ar(dirs["ar"], metas["ar"], ref.layer, d) if "ar" in dirs else None
    note = f"public release layout ({meta.stage or 'final'})"
    return NLA(av, ar, ref, data={"trained_on": meta.trained_on}, note=note)


def _load_release_ar(directory: Path, meta: ReleaseSidecar, layer: int, d: int) -> nn.Module:
    where = directory / META
    blocks = hf_layers(directory)
    if blocks != layer:
        raise NLAError(
            f"{directory}: the AR has {blocks} blocks but reads layer index "
            f"{release_layer_index(layer)}, which "
            f"needs {layer}",
            "fix num_hidden_layers in config.json or the sidecar's extraction_layer_index",
        )
    template = _template(meta, "ar", "explanation", "{explanation}", where)
    section = {"variant": "release", "template": template, "max_explanation_tokens": 4096}
    ctx = directory_context(directory, layer, d)
    ar = build_component("ar", section, ctx)
    suffix = meta.tokens.critic_suffix_ids
    if suffix and ar.sequences(["x"])[0][-len(suffix) :] != list(suffix):
        raise NLAError(
            f"{where}: critic_suffix_ids {suffix} is not how the tokenizer ends the AR template",
            "use the tokenizer and sidecar the NLA was released with (one of them was changed)",
        )
    if (directory / VALUE_HEAD_BIAS).is_file():
        raise NLAError(
            f"{directory / VALUE_HEAD_BIAS}: a head bias (an export by an earlier nla_variants), "
            "which the release layout's bias-free value head has no place for",
            "train the NLA again with ar.variant: release (its head is bias-free) and export it",
        )
    head = load_file(directory / VALUE_HEAD)
    if set(head) != {"weight"} or tuple(head["weight"].shape) != (d, d):
        raise NLAError(
            f"{directory / VALUE_HEAD} is not a Linear({d}, {d}) weight", "fix the AR's files"
        )
    with torch.no_grad():
        ar.head.weight.copy_(head["weight"].float())
    return ar


# -- writing ------------------------------------------------------------------------------------


def _refuse(setting: str, why: str, fix: str = FIX) -> None:
    raise NLAError(f"{setting}: {why}, which the public NLA layout cannot express", fix)


def check_expressible(nla: NLA) -> None:
    """Every setting of this NLA has a place in the release layout, else a one-line error."""
    from nla_variants.variants.av.baseline import choose_placeholder

    av, ar = nla.av, nla.ar
    inj = av.cfg.injection
    if inj.site != "embedding":
        _refuse("av.injection.site", f"the vector enters the residual after block {inj.site}")
    if inj.mode != "replace":
        _refuse("av.injection.mode", f"the vector is {inj.mode}ed to the residual")
    if av.scale is None:
        _refuse("av.injection.scale", "the norm is matched to the residual (match)")
    if inj.center != "none":
        _refuse("av.injection.center", f"vectors are centred ({inj.center})")
    if av.n_slots != 1 or own_tensors(av):
        _refuse(f"av.variant {av.variant_name}", "the vector enters through several slots")
    _, user_only = choose_placeholder(av.tokenizer, "", av.cfg.prompt, 1, av.placeholder.text)
    if user_only != av.prompt_ids.tolist():
        _refuse(
            "av.system",
            f"the AV prompt has a system message ({av.cfg.system!r})",
            f"train with av.system: '' (the prompt as the only message), or {FIX}",
        )
    if ar is None:
        _refuse("ar", "the NLA has no AR")
    if not isinstance(getattr(ar, "head", None), nn.Linear) or not hasattr(ar, "backbone"):
        _refuse(f"ar.variant {ar.variant_name}", "the AR is not blocks + a Linear head")
    if blocks_of(ar.backbone) != nla.ref.layer:
        _refuse("ar.n_layers", f"the AR keeps {blocks_of(ar.backbone)} of {nla.ref.layer} blocks")
    _check_ar_reading(ar, lambda text: release_token_ids(ar.tokenizer, text))
    bias = ar.head.bias
    if bias is not None and bool(bias.detach().ne(0).any()):
        _refuse(
            "ar.head.bias",
            f"the AR's head has a bias (norm {float(bias.detach().norm()):.3g}) that the "
            "release's bias-free value head would drop",
            f"train with ar.variant: release (its head has no bias), or {FIX}",
        )


PROBES = ["A story about a harbor\nThe sentence stops after the", "Python code, a def line"]


def _check_ar_reading(ar: nn.Module, read: Callable[[str], list[int]]) -> None:
    """The AR's token sequences are `read` of its filled template, as the release reads them
    (with special tokens, a declared BOS first), else a one-line refusal naming the cause."""
    before, after = ar.cfg.template.split("{explanation}")
    ours = ar.sequences(PROBES)
    theirs = [list(read(before + p + after)) for p in PROBES]
    if ours == theirs:
        return
    bos = ar.tokenizer.bos_token_id
    if [s[1:] if s[:1] == [bos] else s for s in theirs] == ours:
        _refuse(
            f"ar.variant {ar.variant_name}",
            f"the AR reads no BOS first, but its tokenizer declares {ar.tokenizer.bos_token!r}, "
            "which the release reads first",
            f"train with ar.variant: release (it reads a declared BOS first), or {FIX}",
        )
    _refuse(
        f"ar.variant {ar.variant_name}",
        "the AR tokenises its template in pieces without special tokens",
        f"train with ar.variant: release, or {FIX}",
    )


def _format_template(template: str, slot: str, field: str) -> str:
    """Our template (one literal slot) as a str.format template with `field`."""
    return template.replace("{", "{{").replace("}", "}}").replace("{" + slot + "}", field)


def _meta_common(nla: NLA, role: str) -> dict[str, Any]:
    av, ar, ref = nla.av, nla.ar, nla.ref
    d = nla.d_model
    index = release_layer_index(ref.layer)
    tail = max(1, len(ar.after_ids) - 1)  # the template's end, short of the boundary token
    suffix = ar.sequences(["x"])[0][-tail:]
    return {
        "kind": "nla_model",
        "schema_version": 2,
        "role": role,
        "base_checkpoint": ref.target,
        "d_model": d,
        "extraction_layer_index": index,
        "extraction": {
            "injection_scale": float(av.scale) if role == "av" else None,
            "mse_scale": math.sqrt(d),
        },
        "tokens": {
            "injection_char": av.placeholder.text,
            "injection_token_id": av.placeholder.token_id,
            "injection_left_neighbor_id": av.placeholder.left_id,
            "injection_right_neighbor_id": av.placeholder.right_id,
            "critic_suffix_ids": suffix,
        },
        "prompt_templates": {
            "av": _format_template(av.cfg.prompt, "{placeholder}", "{injection_char}"),
            "ar": _format_template(ar.cfg.template, "{explanation}", "{explanation}"),
        },
        "trained_on": [nla.data["name"]] if nla.data.get("name") else [],
        "parent_checkpoints": [ref.target],
        "created_by": f"nla_variants {__version__}",
        "nla_variants": {  # ours: what the release's fields do not say
            "layer": ref.layer,
            "target_fingerprint": ref.target_fingerprint,
            "vectors": "diff" if ref.diff_model else "activations",
            "diff_model": ref.diff_model,
            "weights": nla.note,
        },
    }


def _write_bos_rule(directory: Path) -> None:
    """The release reads the AR's template with special tokens and requires a tokenizer that
    declares BOS to prepend it (SmolLM2's declares one and prepends none): the exported AR
    tokenizer is rewritten to prepend it, as the release AR reads it."""
    from transformers import AutoTokenizer

    from nla_variants.target import tokenizer_adds_bos

    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.bos_token_id is not None and not tokenizer_adds_bos(tokenizer):
        AutoTokenizer.from_pretrained(directory, add_bos_token=True).save_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        if not tokenizer_adds_bos(tokenizer):
            _refuse(
                "the AR's tokenizer",
                f"it declares BOS {tokenizer.bos_token!r} but cannot be written to prepend it "
                "(the release's readers refuse such a tokenizer)",
                f"use a tokenizer that prepends its BOS, or {FIX}",
            )


def _check_exported_reading(ar: nn.Module, directory: Path) -> None:
    """The exported AR directory's tokenizer, read by the release's rule (special tokens),
    gives the sequences the AR was trained and scored on."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    _check_ar_reading(ar, lambda text: tokenizer(text)["input_ids"])


def export_public(nla: NLA, out: Path) -> Path:
    """Write `nla` as release-layout `av/` and `ar/` directories (LoRA merged), atomically."""
    from nla_variants.artifacts.export import check_out_dir, export_sidecar, portable_config, share
    from nla_variants.artifacts.model_card import write_model_card

    check_expressible(nla)
    check_out_dir(out)
    av, ar = nla.av, nla.ar
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "av").mkdir()
        (tmp / "ar").mkdir()
        av.lm = merge_lora(av.lm)
        save_lm_dir(av.lm, av.tokenizer, tmp / "av")
        ar.backbone = merge_lora(ar.backbone)
        save_backbone_dir(ar.backbone, ar.tokenizer, tmp / "ar")
        _write_bos_rule(tmp / "ar")
        _check_exported_reading(ar, tmp / "ar")
        save_file(
            {"weight": ar.head.weight.detach().float().contiguous().cpu()}, tmp / "ar" / VALUE_HEAD
        )
        for role in ("av", "ar"):
            meta = _meta_common(nla, role)
            if role == "ar":
                meta["critic"] = {"extraction_layer_index": meta["extraction_layer_index"]}
            ReleaseSidecar.parse(meta, out / role / META)  # nothing a reader would refuse
            (tmp / role / META).write_text(
                yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
            )
        av_entry = {"dir": "av", "weights": "merged", "variant": av.variant_name}
        av_entry.update(config=portable_config(av, True), metadata=av.metadata())
        ar_entry = {"dir": "ar", "variant": ar.variant_name, "config": portable_config(ar, True)}
        write_model_card(tmp / "README.md", export_sidecar(nla, av_entry, ar_entry))
        share(tmp)
    return out
