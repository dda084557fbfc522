"""`Strict`: the base of every config class (trial, dataset, sweep, variant and injection
sections alike). Here, below the stages, so that a variant or a core function can define its
own config section without importing the trial config that composes them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # no NaN or infinity anywhere: `gt=0` lets .inf through and a NaN fails every comparison
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
