"""The warm starts' configs (`train.av_sft`, `train.ar_sft`), beside their driver
(`warm_start.py`); the trial config (`nla_variants.config`) composes them."""

from __future__ import annotations

from pydantic import Field, model_validator

from nla_variants.common.strict import Strict


class SFTConfig(Strict):
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    max_minutes: float | None = Field(None, gt=0, description="stop early after this wall time")
    checkpoint_every: int = Field(0, ge=0, description="save a resumable checkpoint every N steps")
    resume_from: str | None = Field(None, description="a checkpoint dir to continue from")


class AVSFTConfig(SFTConfig):
    """The AV warm start, with its held-out check: the NLL gap (shuffled - matching vectors) on
    `ar_sft` rows, which the AV never trains on."""

    eval_every: int = Field(0, ge=0, description="held-out NLL gap every N steps (0: never)")
    eval_samples: int = Field(128, ge=2, description="held-out rows of that check")
    keep_best: bool = Field(False, description="end with the weights of the best check")
    stop_patience: int = Field(0, ge=0, description="stop after N checks without a better gap")
    stop_at_gap: float | None = Field(None, gt=0, description="stop once the gap reaches this")


class ARSFTConfig(SFTConfig):
    """The AR warm start. With `av_text` > 0 it also reads the warm AV's own (greedy)
    explanations of `av_text_rows` ar_sft rows, that share of every batch: the AR learns the
    dialect it will be scored on (RL trains it the same way, online), not only the teacher's.
    With `ridge` it ends by refitting its linear head in closed form on those rows
    (training/readout.py): the best linear readout of its features, at the cost of one forward
    pass per row, where a short SGD run barely moves the head."""

    steps: int = Field(100, ge=0, description="SGD steps (0: only the ridge readout)")
    batch_size: int = Field(16, ge=1)
    av_text: float = Field(0.0, ge=0, le=1, description="share of batches from AV explanations")
    av_text_rows: int = Field(512, ge=1, description="ar_sft rows the AV explains for that")
    ridge: float | None = Field(
        None, gt=0, description="end on the closed-form linear head: ridge penalty (relative)"
    )
    ridge_rows: int = Field(2048, ge=1, description="teacher rows of that fit (+ AV-text rows)")

    @model_validator(mode="after")
    def _trains_something(self) -> ARSFTConfig:
        if self.steps == 0 and self.ridge is None:
            raise ValueError("steps: 0 trains nothing; set steps >= 1 or a ridge penalty")
        return self
