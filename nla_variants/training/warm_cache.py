"""The content-addressed warm-start cache: a finished AV or AR warm start kept under a key of
everything that decides its weights, so trials that differ only downstream (RL, evaluation)
load it instead of training it again.

    ROOT/av-KEY/, ROOT/ar-KEY/   weight-only checkpoints (`nla_variants.training.checkpoint`) whose
                                 sidecar also holds the warm start's training figures
    ROOT/av_text-KEY.json        a warm AV's own explanations, which AR warm starts read

The keys must not change for an unchanged configuration: existing caches keep hitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nla_variants import __version__
from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj
from nla_variants.training.checkpoint import SIDECAR, save_checkpoint
from nla_variants.training.warm_start_config import ARSFTConfig, SFTConfig
from nla_variants.variants.registry import BuildContext, Kind, get_variant

_NOT_IN_KEY = {"checkpoint_every", "resume_from"}  # where checkpoints go, not what is learned


def _not_in_key(sft: SFTConfig) -> set[str]:
    """Without a ridge readout its keys stay out of the key too: earlier warm starts stay valid."""
    if isinstance(sft, ARSFTConfig) and sft.ridge is not None:
        return _NOT_IN_KEY
    return _NOT_IN_KEY | {"ridge", "ridge_rows"}


def _revision(kind: Kind, section: Mapping[str, Any]) -> Any:
    """The variant's `warm_start_revision`: set when its warm start changed under the same
    config (the release AR's head lost its bias), so earlier cached ones are not reused."""
    try:
        variant = get_variant(kind, str(section.get("variant", "baseline")))
    except NLAError:
        return None  # an unknown variant fails where it is built, with its own message
    return getattr(variant.cls, "warm_start_revision", None)


@dataclass(frozen=True)
class WarmStartCache:
    """One trial's view of the cache: the settings every key shares, and the directory."""

    root: Path
    dataset: str  # the dataset directory's name: content-addressed (model, layer, corpus, teacher)
    precision: str
    device: str  # the device type
    seed: int
    version: str = __version__

    def key(
        self, kind: Kind, section: Mapping[str, Any], sft: SFTConfig, reads: dict | None = None
    ) -> str:
        """Everything that decides the warm-started weights of one component: its config section
        as written, its SFT settings, the shared settings. `reads`: what an AR learns to read
        (the AV's output format, the AV whose own text it reads)."""
        key: dict[str, Any] = {
            "render": reads,
            "kind": kind,
            "dataset": self.dataset,
            "section": dict(section),
            "sft": sft.model_dump(mode="json", exclude=_not_in_key(sft)),
            "precision": self.precision,
            "device": self.device,
            "seed": self.seed,
            "version": self.version,
        }
        revision = _revision(kind, section)
        if revision is not None:  # only variants that declare one: other keys stay as they were
            key["revision"] = revision
        return hash_obj(key, 16)

    def path(self, kind: Kind, key: str) -> Path:
        return self.root / f"{kind}-{key}"

    def lookup(self, kind: Kind, key: str) -> Path | None:
        """The checkpoint directory of a finished warm start with this key, if there is one."""
        path = self.path(kind, key)
        return path if (path / SIDECAR).is_file() else None

    def store(
        self,
        kind: Kind,
        key: str,
        component: nn.Module,
        ctx: BuildContext,
        step: int,
        figures: dict[str, float],
    ) -> Path:
        """Keep a finished warm start (weights only: the cache serves warm starts, not SFT
        resumes); a concurrent worker that trained the same one keeps its (equal) copy."""
        path = self.path(kind, key)
        extra = {"figures": figures}
        save_checkpoint(path, component, kind, ctx, step=step, extra=extra, replace=False)
        return path

    def av_text_memo(self, key: dict) -> Path:
        """Where a warm AV's explanations of some rows are kept (`key`: the AV and the rows)."""
        return self.root / f"av_text-{hash_obj(key, 16)}.json"
