"""`Strict`: the base of every config class (trial, dataset, sweep, variant and injection
sections alike). Here, below the stages, so that a variant or a core function can define its
own config section without importing the trial config that composes them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    # no NaN or infinity anywhere: `gt=0` lets .inf through and a NaN fails every comparison
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# A config's seed: derived seeds (a step's, a row's) are products and hashes of it, and a torch
# generator takes at most 64 bits, so an unbounded seed failed deep inside a stage.
Seed = Annotated[int, Field(ge=0, lt=2**32, description="0 <= seed < 2**32")]
