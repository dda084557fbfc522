"""The variant interface, written down: what the trainers, the evaluation and the checkpoints
call on an Activation Verbalizer (vector -> explanation) and an Activation Reconstructor
(explanation -> vector).

A variant does not inherit from these classes; it only has the members (structural typing), and
the contract suite (`nla_variants.variants.testing`) checks that it does. The small capability protocols
say what a variant may add; the code that uses a capability asks `isinstance(x, Capability)`.
Arguments are batches: lists of strings and `[B, d_model]` tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from pydantic import BaseModel

    from nla_variants.variants.large_models import ComponentMemory, ModelShape
    from nla_variants.variants.registry import TargetDims


@runtime_checkable
class ActivationVerbalizer(Protocol):
    """Vector -> explanation. `BaselineAV` (nla_variants/variants/av/baseline.py) implements all of it."""

    variant_name: str  # set by @register_av
    config_class: type[BaseModel]  # set by @register_av; `cfg` is an instance of it
    cfg: BaseModel  # recorded in checkpoints, which rebuild the AV from it
    eos_id: int  # the end-of-response token (RL pads responses with it)
    prompt_ids: torch.Tensor  # 1-D: the fixed prompt's token ids (the warm start counts them)

    def sft_loss(self, vectors: torch.Tensor, explanations: Sequence[str]) -> torch.Tensor:
        """Warm start: scalar mean NLL of the teacher explanations over response tokens."""
        ...

    def encode_responses(self, explanations: Sequence[str]) -> list[list[int]]:
        """Teacher explanations as response token lists (rendered, tagged, ending in eos_id)."""
        ...

    def response_logprobs(
        self, vectors: torch.Tensor, responses: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RL: (logp, mask), both [B, R] for the longest response R; padding zeroed in logp."""
        ...

    def generate(
        self,
        vectors: torch.Tensor,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        num_samples: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> tuple[list[str], list[list[int]]]:
        """RL rollouts and evaluation: (texts, tokens), num_samples consecutive rows a vector.
        `seeds`, one per vector: sampling must then depend on each seed alone (not on the batch,
        the rank or torch's RNG), so a multi-process or resumed RL run draws the same rollouts;
        `nla_variants.core.sampling.SeededSampling` does it for a Hugging Face `generate`."""
        ...

    def extract(self, text: str) -> str | None:
        """The explanation in a generation, or None for a failed extraction."""
        ...

    def render_target(self, explanation: str) -> str:
        """A teacher explanation in this AV's output format (what the AR is trained to read)."""
        ...

    def metadata(self) -> dict:
        """Plain YAML data for the checkpoint sidecar."""
        ...


@runtime_checkable
class ActivationReconstructor(Protocol):
    """Explanation -> vector. `BaselineAR` (nla_variants/variants/ar/baseline.py) implements all of it."""

    variant_name: str  # set by @register_ar
    config_class: type[BaseModel]  # set by @register_ar; `cfg` is an instance of it
    cfg: BaseModel  # recorded in checkpoints, which rebuild the AR from it

    def forward(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> torch.Tensor:
        """[B, d_model] float32 predictions; `sources` are the prefixes the vectors came from
        (an AR that reads them is a `ReadsSource`); an empty explanation must work."""
        ...

    def loss(
        self,
        explanations: Sequence[str],
        vectors: torch.Tensor,
        sources: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Warm start and RL: the normalised MSE of the prediction, batch mean (a scalar)."""
        ...

    def sequences(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> list[list[int]]:
        """The token ids read, one list per explanation (the warm start's throughput)."""
        ...

    def metadata(self) -> dict:
        """Plain YAML data for the checkpoint sidecar."""
        ...


# -- optional capabilities ---------------------------------------------------------------------


@runtime_checkable
class VerifiesInjection(Protocol):
    """An AV that can prove the vector reaches its model; `run_trial` calls it before training
    and the contract suite before its shape checks."""

    def verify_injection(self) -> None:
        """Raise if two different vectors give the same output."""
        ...


@runtime_checkable
class ReadsSource(Protocol):
    """An AR that reads the source prefix as well as the explanation (the full-context AR); the
    contract suite checks that its prediction depends on the prefix."""

    def source_ids(self, sources: Sequence[str]) -> list[list[int]]:
        """The token ids it reads of each source prefix."""
        ...


@runtime_checkable
class PrintsFlowchart(Protocol):
    """An AR whose decision structure prints as text; `run_trial` logs it as flowchart.txt."""

    def flowchart(self, mean: torch.Tensor | None = None) -> str:
        """The structure as text; `mean`: a reference direction (the training mean)."""
        ...


@runtime_checkable
class ChecksTarget(Protocol):
    """A variant *config* that can tell from the target's shape alone (config.json, no weights)
    whether it can be built on it. `nla_variants.training.preflight` calls it before a trial loads
    anything and for every choice of a sweep's space, so an out-of-range value is one line
    before any dataset or MLflow run, not a failure once the variant is built."""

    def check_target(self, dims: TargetDims) -> None:
        """Raise an NLAError naming the key (e.g. `av.injection.site`) and the valid range."""
        ...


@runtime_checkable
class DeclaresMemory(Protocol):
    """A variant *config* whose component is not built of the target's blocks (the flowchart
    AR's word tree): it says what it holds, so the memory estimate
    (`nla_variants.training.memory`) sizes it without knowing the variant."""

    def memory_shape(self, shape: ModelShape) -> ComponentMemory:
        """Its parameters and the target blocks it runs, on a target of this shape."""
        ...


def missing_members(obj: object, protocol: type) -> list[str]:
    """The members of `protocol` that `obj` lacks (for an error that names them)."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return sorted(n for n in names if not hasattr(obj, n))
