"""The YAML sidecars the project writes beside its tensors, as typed records.

One class per file format, used by the writer (which checks its record against it before writing,
so nothing lands that a reader would refuse) and by every reader (which gets attributes, so a
misspelt key is an AttributeError at the reader, not a silent `None`). A record keeps the keys
it does not type (`extra="allow"`): they are provenance for people and newer writers, and the
code does not read them. Writers keep writing their own dicts, so the bytes on disk, and every
address or fingerprint taken from them, stay what they were.

Here, below the stages, because the dataset store, the checkpoints, the fine-tunes and the
loaders all read these files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from nla_variants.common.errors import NLAError


class Record(BaseModel):
    """A sidecar: typed where the code reads it, the rest kept as written."""

    model_config = ConfigDict(extra="allow", frozen=True)
    FILE: ClassVar[str]
    WHAT: ClassVar[str]  # "DIR is not a WHAT (no FILE)"
    FIX: ClassVar[str]
    _written: dict = PrivateAttr(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, where: str | Path) -> Self:
        """Validate a record read from (or about to be written to) `where`."""
        data = {} if data is None else data
        try:
            record = cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "the file"
            raise NLAError(
                f"{where}: not a valid {cls.FILE} ({field}: {err['msg']})", cls.FIX
            ) from None
        record._written = data
        return record

    def as_written(self, *keys: str) -> dict:
        """The record's `keys` that it holds, in that order (all of them, in the file's order, by
        default), as the file holds them: for provenance shown to people or copied unchanged."""
        if not keys:
            return dict(self._written)
        return {k: self._written[k] for k in keys if k in self._written}

    @classmethod
    def read(cls, directory: str | Path) -> Self:
        """The record in `directory`, or a one-line NLAError naming what is missing."""
        path = Path(directory) / cls.FILE
        if not path.is_file():
            raise NLAError(f"{directory} is not a {cls.WHAT} (no {cls.FILE})", cls.FIX)
        return cls.parse(read_yaml(path), path)


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        problem = str(e).replace("\n", " ")
        raise NLAError(f"{path} is not valid YAML ({problem})", "rewrite or delete it") from None


class ModelRecord(BaseModel):
    """A model as a sidecar names it: its spec and the fingerprint of its weights."""

    model_config = ConfigDict(extra="allow", frozen=True)
    spec: str
    fingerprint: str | None = None
    kind: str | None = None


class DatasetTeacher(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str | None = None
    splits: list[str] = []


class SplitCounts(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    rows: int
    documents: int = 0
    explained: int = 0


class DatasetProperties(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int
    columns: list[str]


class DatasetSidecar(Record):
    """`dataset.yaml`: written last by `nla prepare`, so its presence means the dataset is
    complete (`nla_variants.data.store`)."""

    FILE = "dataset.yaml"
    WHAT = "complete dataset"
    FIX = "run `nla prepare` on its config to finish (or rebuild) it"

    name: str = ""
    model: ModelRecord
    vectors: Literal["activations", "diff"] = "activations"
    diff_model: ModelRecord | None = None
    layer: int
    d_model: int
    tokenization: dict[str, bool] = {}
    teacher: DatasetTeacher = DatasetTeacher()
    counts: dict[str, int] = {}
    splits: dict[str, SplitCounts] = {}
    norms: dict[str, dict[str, float]]
    properties: DatasetProperties | None = None  # absent: a build that kept older shards
    shards: list[str]
    throughput: dict[str, int | float | None] = {}  # tokens_per_s: None when nothing was built

    @property
    def injection_norm(self) -> float:
        """The median activation norm of every row: the `data` injection scale."""
        return self.norms["all"]["p50"]

    @property
    def add_bos(self) -> bool:
        return self.tokenization.get("add_bos", False)


class CheckpointSidecar(Record):
    """`checkpoint.yaml`: a component checkpoint's kind, variant and config, the target it was
    trained on and its training state (`nla_variants.training.checkpoint`)."""

    FILE = "checkpoint.yaml"
    WHAT = "checkpoint"
    FIX = "point at a directory written by nla train"

    kind: Literal["av", "ar"]
    variant: str
    config: dict[str, Any]  # the variant's own section: its class validates it on rebuild
    model_fingerprint: str | None
    model_spec: str | None
    layer: int
    d_model: int
    data_norm: float | None = None
    metadata: dict[str, Any] = {}
    step: int = 0
    optimizer: dict[str, Any] | None = None  # the optimiser's scalars, beside its tensors
    scheduler: dict[str, Any] | None = None
    figures: dict[str, float] = {}  # a warm-start cache entry's measured figures


class RunRecord(Record):
    """`nla_run.yaml`: which checkpoints a trial finished and which dataset it read, so a run
    directory finds its models without MLflow (`nla_variants.training.runs`)."""

    FILE = "nla_run.yaml"
    WHAT = "run directory with a run record"
    FIX = "pass a run directory `nla train` wrote"

    run_id: str = ""
    stage: Literal["warm_start", "finished"] = "warm_start"
    dataset: str | None = None
    checkpoints: dict[str, str] = {}
    metrics: dict[str, float] = {}  # at the end of the trial, its finite final metrics


class ExportedComponent(BaseModel):
    """One component of an export: its directory, and what rebuilds it there."""

    model_config = ConfigDict(extra="allow", frozen=True)
    dir: str
    variant: str
    config: dict[str, Any]  # the variant's own section: its class validates it on rebuild
    metadata: dict[str, Any] = {}
    weights: Literal["merged", "adapter"] = "merged"  # the AV's: a LoRA kept as an adapter
    prompt_ids: list[int] = []  # the AV's prompt as it tokenised when exported


class ExportTarget(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    model: str
    fingerprint: str | None = None


class ExportSidecar(Record):
    """`nla.yaml`: what `nla export` writes beside the AV and AR directories (its model card is
    made from the same record)."""

    FILE = "nla.yaml"
    WHAT = "nla_variants export"
    FIX = "run nla export again"
    FORMAT: ClassVar[str] = "nla_variants.nla"
    VERSION: ClassVar[int] = 1

    format: str
    version: int = 0
    source: dict[str, Any] = {}  # where it came from: kind, name and which weights
    target: ExportTarget
    layer: int
    d_model: int
    diff_model: str | None = None
    tokenization: dict[str, bool] = {}
    context: dict[str, Any] = {}  # the training statistics' file and its tensors
    av: ExportedComponent
    ar: ExportedComponent | None = None
    teacher: dict[str, Any] | None = None  # provenance: the teacher's settings as given
    data: dict[str, Any] = {}  # provenance: the dataset's sidecar, in part
    metrics: dict[str, float] = {}
    recipe: dict[str, Any] | None = None  # provenance: the run's training settings

    @classmethod
    def read(cls, directory: str | Path) -> Self:
        """Refuses another tool's `nla.yaml` and a newer format by name, before the fields."""
        path = Path(directory) / cls.FILE
        if not path.is_file():
            return super().read(directory)
        data = read_yaml(path)
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise NLAError(f"{path} is not an nla_variants export", cls.FIX)
        if int(data.get("version", 0)) > cls.VERSION:
            raise NLAError(
                f"{directory} was exported by a newer nla_variants (format {data['version']})",
                "upgrade nla_variants",
            )
        return cls.parse(data, path)

    @property
    def add_bos(self) -> bool:
        return self.tokenization.get("add_bos", False)

    @property
    def weights(self) -> str:
        """Which weights were exported (e.g. "after RL"), as the source said."""
        return str(self.source.get("weights") or "")


class ReleaseTokens(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    injection_char: str | None = None
    injection_token_id: int | None = None
    injection_left_neighbor_id: int | None = None
    injection_right_neighbor_id: int | None = None
    critic_suffix_ids: list[int] | None = None  # how the AR template's tokens end


class ReleaseExtraction(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    injection_scale: Any = None  # a number or "sqrt_d_model": read by `injection_scale()`
    mse_scale: float | None = 0.0  # null: an AR trained on raw (unnormalised) vectors


SQRT_D = "sqrt_d_model"
RELEASE_ROLES = {"av": "av", "actor": "av", "ar": "ar", "critic": "ar"}


class ReleaseSidecar(Record):
    """`nla_meta.yaml`: the public NLA release's sidecar, one per AV ("actor") and AR
    ("critic") directory (`nla_variants.artifacts.public_layout` reads and writes the layout)."""

    FILE = "nla_meta.yaml"
    WHAT = "release-layout NLA directory"
    FIX = "point at the NLA's av/ and ar/ directories"

    kind: str
    role: str
    d_model: int
    base_checkpoint: str | None = None
    extraction_layer_index: int | None = None
    critic: dict[str, Any] = {}  # the AR's own copy of extraction_layer_index, in some releases
    tokens: ReleaseTokens = ReleaseTokens()
    extraction: ReleaseExtraction = ReleaseExtraction()
    prompt_templates: dict[str, Any] = {}  # role (public or training name) -> template
    stage: str | None = None
    trained_on: Any = None

    @classmethod
    def read(cls, directory: str | Path) -> Self:
        """Refuses another kind of sidecar by name, and an AV without its placeholder tokens."""
        path = Path(directory) / cls.FILE
        data = read_yaml(path) if path.is_file() else None
        kind, role = (data.get("kind"), data.get("role")) if isinstance(data, dict) else (None,) * 2
        if data is not None and (kind != "nla_model" or role not in RELEASE_ROLES):
            raise NLAError(
                f"{path} is not an NLA model sidecar (kind {kind!r}, role {role!r})", cls.FIX
            )
        record = super().read(directory)
        if record.component == "av":
            for name in ReleaseTokens.model_fields:
                value = getattr(record.tokens, name)
                if name != "critic_suffix_ids" and value is None:
                    raise NLAError(f"{path} has no valid tokens.{name}", "fix the sidecar")
        return record

    @property
    def component(self) -> str:
        """ "av" or "ar", whichever name the release gave the role."""
        return RELEASE_ROLES[self.role]

    @property
    def layer_index(self) -> int | None:
        """The release's extraction layer index K (the output of block K), where recorded."""
        if self.extraction_layer_index is not None:
            return self.extraction_layer_index
        index = self.critic.get("extraction_layer_index")
        return index if isinstance(index, int) else None

    def injection_scale(self, where: str | Path) -> float:
        """The norm the AV's vectors are scaled to: a positive number, or sqrt(d_model)."""
        raw = self.extraction.injection_scale
        if raw == SQRT_D:
            return math.sqrt(self.d_model)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value) or value <= 0:
            raise NLAError(
                f"{where}: extraction.injection_scale {raw!r} is not a positive number",
                "this AV needs the norm it was trained with; fix the sidecar",
            )
        return value


class FinetuneSidecar(Record):
    """`finetune.yaml`: what `nla finetune` records in the checkpoint it saves (the organism
    an audit reads, the diff model a dataset subtracts)."""

    FILE = "finetune.yaml"
    WHAT = "fine-tune `nla finetune` saved"
    FIX = "point at a fine-tune `nla finetune` saved, or rebuild it with that command"

    address: str  # the fine-tune's content address: its directory name's suffix
    base: ModelRecord
    genre: str | None = None
    secret_word: str | None = None
    documents: int
    steps: int
    tokens_seen: int
    loss_first: float
    loss_last: float
