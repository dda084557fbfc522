"""Activation diffing: datasets whose vectors are a second model's activations minus the target's.

Why: an NLA trained on difference vectors explains what changed between two models on the same
inputs (for example the target after a short fine-tune on one genre, see
`nla_variants.training.finetune`), instead of what the target represents.

Set `target.diff_model` in a prepare config (same forms as `target.model`: `embedded`, a .gguf
file, a local checkpoint dir, a hub id). The second model is an input: this module never trains.
`finetune:PATH.yaml` names the checkpoint `nla finetune PATH.yaml` built; the caller of `prepare`
turns it into that dir first (`nla_variants.training.finetune.with_built_diff_model`, as the nla
commands do), and it is an error here. Each document is tokenised once with the target's
tokenizer and run once through each model (early exit at `target.layer`); the stored vector at
every truncation point is `diff_model - model`, raw fp32. Everything downstream (splits, shards,
the AV and AR, which are still built from `target.model`) is unchanged. The sidecar says
`vectors: diff` and records both models; the content address covers the second model's weights.

Both models must share the architecture, depth, d_model and tokenizer (checked before anything is
written; each mismatch is a one-line NLAError). A second model with the same weights as the target
is an error too, since every vector would be zero.

Teachers: the explanations are still written from the prefix text alone (the heuristic teacher,
and the Claude and local teachers, never see a vector). For a diff dataset they describe the
input, not the difference, so the warm start only teaches the explanation format and
prefix-conditional content; what the difference means is learnt in RL, where the reward is the
reconstruction of the difference vector.

Precision: both models run with the same `target.precision`. A short fine-tune moves activations
by a few percent of their norm, comparable to bf16 rounding noise, so prefer `precision: fp32`
for diff datasets (configs/prepare_diff.yaml does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj
from nla_variants.common.schema import FinetuneSidecar
from nla_variants.config import TargetConfig
from nla_variants.target import (
    ModelSource,
    TargetModel,
    check_layer,
    content_fingerprint,
    resolve_model,
)

log = logging.getLogger(__name__)

_CALL_STATE = ("truncation", "padding")
FINETUNE_HINT = "use a fine-tune of target.model, e.g. one made by `nla finetune`"
FINETUNE_SPEC_PREFIX = "finetune:"  # target.diff_model: finetune:configs/finetune_narrative.yaml
FINETUNE_META = FinetuneSidecar.FILE  # what `nla finetune` records in the checkpoint it saves


def _arch(source: ModelSource) -> tuple[str, int]:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(source.load_path)
    cfg = getattr(cfg, "text_config", cfg)
    return str(cfg.model_type), int(cfg.vocab_size)


def _tokenizer_hash(source: ModelSource, from_file: bool) -> str:
    """Identity of the text -> ids mapping. Truncation/padding are call-time state that a saved
    tokenizer can carry along; they change no ids, so they are left out."""
    if from_file:  # a plain JSON read: much faster than building the tokenizer
        state = json.loads((Path(source.load_path) / "tokenizer.json").read_text())
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(source.load_path)
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            return hash_obj(sorted(tok.get_vocab().items()), 16)
        state = json.loads(backend.to_str())
    return hash_obj({k: v for k, v in state.items() if k not in _CALL_STATE}, 16)


def _same_tokenizer(a: ModelSource, b: ModelSource) -> bool:
    from_file = all((Path(s.load_path) / "tokenizer.json").is_file() for s in (a, b))
    return _tokenizer_hash(a, from_file) == _tokenizer_hash(b, from_file)


def resolve_diff_model(cfg: TargetConfig, source: ModelSource) -> ModelSource | None:
    """The second model of a diff dataset (None for an ordinary dataset), validated against the
    target before anything is loaded or written. Its fingerprint is content-based (see
    `content_fingerprint`), so it can go into the dataset address."""
    if cfg.diff_model is None:
        return None
    spec = f"target.diff_model {cfg.diff_model}"
    if cfg.diff_model.startswith(FINETUNE_SPEC_PREFIX):
        raise NLAError(
            f"{spec} is a fine-tune config, not a model",
            "resolve it first with nla_variants.training.finetune.with_built_diff_model (the nla"
            " commands do), or give the checkpoint dir `nla finetune` printed",
        )
    other = resolve_model(cfg.diff_model)
    if other.d_model != source.d_model:
        raise NLAError(
            f"{spec} has d_model {other.d_model} but target.model has {source.d_model};"
            " difference vectors need the same architecture",
            FINETUNE_HINT,
        )
    if other.num_layers != source.num_layers:
        raise NLAError(
            f"{spec} has {other.num_layers} blocks but target.model has {source.num_layers};"
            " difference vectors need the same architecture",
            FINETUNE_HINT,
        )
    check_layer(cfg.layer, other.num_layers, other.spec)
    (arch, vocab), (arch0, vocab0) = _arch(other), _arch(source)
    if (arch, vocab) != (arch0, vocab0):
        raise NLAError(
            f"{spec} is a {arch} with vocab {vocab} but target.model is a {arch0} with vocab"
            f" {vocab0}; difference vectors need the same architecture",
            FINETUNE_HINT,
        )
    if not _same_tokenizer(other, source):
        raise NLAError(
            f"{spec} has a different tokenizer from target.model; both must read the same tokens",
            FINETUNE_HINT,
        )
    fingerprint = content_fingerprint(other)
    if fingerprint == content_fingerprint(source):
        raise NLAError(
            f"{spec} resolves to the same weights as target.model ({fingerprint[:24]}):"
            " every difference vector would be zero",
            "point target.diff_model at a different checkpoint (e.g. from `nla finetune`)",
        )
    return replace(other, fingerprint=fingerprint)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class DiffTarget:
    """Stands in for TargetModel inside `prepare`: tokenises with the target and returns
    `second - target` from `residuals` (one early-exit pass per model per batch)."""

    def __init__(self, target: TargetModel, second: TargetModel) -> None:
        if _same_weights(target.model, second.model):  # e.g. a gguf and its converted copy
            raise NLAError(
                f"target.diff_model {second.source.spec} has exactly the weights of target.model:"
                " every difference vector would be zero",
                "point target.diff_model at a different checkpoint (e.g. from `nla finetune`)",
            )
        self.target = target
        self.second = second

    @property
    def tokenizer(self):
        return self.target.tokenizer

    @property
    def dtype(self) -> torch.dtype:
        return self.target.dtype

    @property
    def source(self) -> ModelSource:
        return self.target.source

    @property
    def d_model(self) -> int:
        return self.target.d_model

    @property
    def num_layers(self) -> int:
        return self.target.num_layers

    def tokenizer_hash(self) -> str:
        return self.target.tokenizer_hash()

    def tokenize(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        return self.target.tokenize(texts, max_tokens)

    def residuals(
        self,
        token_ids: Sequence[Sequence[int]],
        layer: int,
        positions: Sequence[Sequence[int]],
        max_batch_tokens: int = 8192,
        on_batch: Callable[[int], object] | None = None,
    ) -> list[np.ndarray]:
        """`second - target` at `layer` for the selected positions, fp32 (see
        TargetModel.residuals); progress is reported for the second pass only."""
        base = self.target.residuals(token_ids, layer, positions, max_batch_tokens)
        other = self.second.residuals(token_ids, layer, positions, max_batch_tokens, on_batch)
        return [o - b for o, b in zip(other, base, strict=True)]


def load_extractor(
    cfg: TargetConfig, diff: ModelSource | None, source: ModelSource | None = None
) -> TargetModel | DiffTarget:
    """The model(s) `prepare` extracts with: the target, or the target paired with the second
    model of a diff dataset. `source`, `diff`: the models already resolved and checked."""
    target = TargetModel(source or cfg.model, cfg.precision, cfg.device)
    if diff is None:
        return target
    return DiffTarget(target, TargetModel(diff, cfg.precision, cfg.device))


def diff_sidecar(diff: ModelSource | None) -> dict:
    """The sidecar keys that say what the vector column holds."""
    if diff is None:
        return {"vectors": "activations"}
    return {
        "vectors": "diff",
        "vectors_definition": "diff_model activations minus model activations (same layer,"
        " same tokens, same positions)",
        "diff_model": {
            "spec": diff.spec,
            "kind": diff.kind,
            "fingerprint": diff.fingerprint,
            "num_layers": diff.num_layers,
            "d_model": diff.d_model,
        },
    }
