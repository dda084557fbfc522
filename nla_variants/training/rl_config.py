"""RL's config (`train.rl`), beside its module and driver (`rl.py`); the trial config
(`nla_variants.config`) composes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nla_variants.common.strict import Strict


class RLConfig(Strict):
    """GRPO on the AV with an online AR (the paper's second stage). steps: 0 skips RL. The AR
    learns from the rollouts by SGD (`train_ar`), by a closed-form refit of its head
    (`ar_ridge`), or not at all."""

    steps: int = Field(0, ge=0)
    batch_size: int = Field(4, ge=1, description="activations per step (B)")
    group_size: int = Field(8, ge=2, description="sampled explanations per activation (G)")
    av_lr: float = Field(1e-5, gt=0)
    ar_lr: float = Field(5e-5, gt=0, description="the paper's working point: ~5x the AV's")
    warmup_steps: int = Field(0, ge=0)
    kl_coef: float = Field(0.05, ge=0, description="penalty to the frozen warm-start AV")
    clip_eps: float = Field(0.2, gt=0)
    inner_epochs: int = Field(1, ge=1)
    temperature: float = Field(1.0, gt=0)
    max_response_tokens: int = Field(96, ge=8, description="hard cap; a cut response fails")
    grad_clip: float = Field(1.0, gt=0)
    train_ar: bool = True
    reward: Literal["mse", "centered_cosine"] = Field(
        "mse",
        description="mse: -normalised MSE (the paper); centered_cosine: cosine of prediction and "
        "target minus the training mean direction, which pays nothing for hedging towards it",
    )
    contrast: float = Field(
        0.0,
        ge=0,
        description="reward += contrast x the mean normalised MSE to other rows' vectors",
    )
    contrast_rows: int = Field(16, ge=1, description="random rl rows that term compares with")
    ar_ridge: float | None = Field(
        None,
        gt=0,
        description="refit the fixed AR's linear head in closed form (ridge penalty, relative) "
        "on ar_ridge_rows teacher rows plus every closed rollout so far; needs train_ar: false",
    )
    ar_refit_every: int = Field(10, ge=1, description="RL steps between those refits")
    ar_ridge_rows: int = Field(2048, ge=1, description="ar_sft teacher rows in every refit")
    eval_every: int = Field(10, ge=0, description="eval round-trip FVE every N steps (0: never)")
    eval_samples: int = Field(64, ge=2)
    max_nonfinite: int = Field(3, ge=1, description="consecutive skipped steps before failing")
    checkpoint_every: int = Field(0, ge=0)
    resume_from: str | None = None
    max_minutes: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_ar_update(self) -> RLConfig:
        if self.ar_ridge is not None and self.train_ar:
            raise ValueError(
                "ar_ridge refits the head of a fixed AR, train_ar trains it by SGD; "
                "set train.rl.train_ar: false (or drop ar_ridge)"
            )
        return self
