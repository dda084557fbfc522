"""Typed, validated configs (pydantic): unknown keys and wrong types fail on load, in one line.

A config is YAML; `--set a.b=value` overrides (value parsed as YAML) are applied before
validation. `load_config` is the one entry point the CLI and the tests use.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from nla_variants.common.errors import NLAError, format_validation_error
from nla_variants.common.plugins import load_entry_points
from nla_variants.common.strict import Seed, Strict
from nla_variants.training.rl_config import RLConfig
from nla_variants.training.warm_start_config import ARSFTConfig, AVSFTConfig
from nla_variants.variants.registry import ARSection, AVSection

SPLITS = ("av_sft", "ar_sft", "rl", "eval")
T = TypeVar("T", bound="BaseModel")


DEVICE_FIX = "use cpu, cuda or cuda:N (or leave it unset: cuda when available)"


def device_problem(spec: str) -> str | None:
    """Why `spec` is not a device string torch accepts (None: it is one). Syntax only, so a
    config written on a GPU machine still reads on a CPU one (`checks.check_device` asks the
    machine where the device is used)."""
    import torch

    try:
        torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        return f"{spec!r} is not a device"
    return None


def _device(spec: str | None) -> str | None:
    problem = spec is not None and device_problem(spec)
    if problem:
        raise ValueError(f"{problem}; {DEVICE_FIX}")
    return spec


# a device string torch parses (whether this machine has it is checked where it is used)
Device = Annotated[str | None, AfterValidator(_device)]


class TargetConfig(Strict):
    model: str = Field("embedded", description="embedded | path.gguf | local dir | hub id")
    layer: int = Field(20, ge=0, description="hidden_states[layer]: residual after `layer` blocks")
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: Device = None
    max_batch_tokens: int = Field(8192, ge=16)
    diff_model: str | None = Field(
        None,
        description="activation diffing: store diff_model's activations minus model's (same forms"
        " as model; same architecture and tokenizer), e.g. a `nla finetune` checkpoint dir",
    )


class HFDatasetConfig(Strict):
    name: str
    config: str | None = None
    split: str = "train"
    streaming: bool = True
    data_files: list[str] | None = None


class CorpusConfig(Strict):
    source: Literal["builtin", "files", "hf"] = "builtin"
    paths: list[str] = Field(default_factory=list, description="files source: .txt/.jsonl/.parquet")
    text_column: str = "text"
    genre_column: str | None = None
    hf: HFDatasetConfig | None = None
    max_documents: int | None = Field(None, ge=1)
    min_chars: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _source_fields(self) -> CorpusConfig:
        if self.source == "files" and not self.paths:
            raise ValueError("corpus.source 'files' needs corpus.paths (a list of files)")
        if self.source == "hf" and self.hf is None:
            raise ValueError("corpus.source 'hf' needs corpus.hf.name")
        return self


class SamplingConfig(Strict):
    positions_per_doc: int = Field(4, ge=1)
    min_prefix: int = Field(8, ge=1)
    max_tokens: int = Field(128, ge=2, description="documents are cut to this many tokens")
    splits: dict[str, float] = Field(
        default_factory=lambda: {"av_sft": 0.4, "ar_sft": 0.4, "rl": 0.1, "eval": 0.1}
    )

    @model_validator(mode="after")
    def _check(self) -> SamplingConfig:
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; known: {list(SPLITS)}")
        if any(v < 0 for v in self.splits.values()) or abs(sum(self.splits.values()) - 1) > 1e-6:
            raise ValueError("split fractions must be >= 0 and sum to 1")
        if self.min_prefix > self.max_tokens:
            raise ValueError("sampling.min_prefix must be <= sampling.max_tokens")
        return self


class AnthropicTeacherConfig(Strict):
    model: str = "claude-sonnet-4-6"
    mode: Literal["batch", "sync"] = "batch"
    max_concurrency: int = Field(8, ge=1)
    max_retries: int = Field(5, ge=0)
    max_tokens: int = Field(200, ge=16)
    base_url: str | None = None
    poll_interval_s: float = Field(10.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)


class LocalTeacherConfig(Strict):
    model: str = "embedded"
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(80, ge=8)
    precision: Literal["auto", "bf16", "fp32"] = "auto"


# The teachers a config may name, each with the class that validates its section
# (`teacher.NAME:`; None: the teacher has no settings). The built-ins are declared here, where the
# config validates, because their code is in the data layer above; `register_teacher`
# (`nla_variants.data.teachers.registry`) declares any other teacher's (a plugin in one file) and
# binds every teacher's code. Third-party packages may also name a module in this entry-point
# group, imported on the first lookup.
TEACHER_SECTIONS: dict[str, type[BaseModel] | None] = {
    "heuristic": None,
    "anthropic": AnthropicTeacherConfig,
    "local": LocalTeacherConfig,
}
TEACHER_ENTRY_POINT_GROUP = "nla_variants.teachers"
# Every dump holds these sections, defaults included, in this order (they were fields before
# teachers registered, so serialised configs and the hashes of them stay byte-identical); any
# other teacher's section is dumped where it was written or its teacher is selected.
ALWAYS_DUMPED_TEACHERS = ("anthropic", "local")
_teacher_plugins_loaded = False


def declare_teacher(name: str, config_cls: type[BaseModel] | None) -> None:
    """Make `teacher.kind: NAME` and the section `teacher.NAME:` valid, that section validated by
    `config_cls`. Called by `register_teacher`; a second declaration must name the same class."""
    if name in TeacherConfig.model_fields:
        raise ValueError(
            f"a teacher cannot be named {name!r}: that is a key of the teacher section"
        )
    if name in TEACHER_SECTIONS and TEACHER_SECTIONS[name] is not config_cls:
        raise ValueError(
            f"teacher {name!r} is already declared with config {TEACHER_SECTIONS[name]}"
        )
    TEACHER_SECTIONS[name] = config_cls
    _sections_model.cache_clear()


def teacher_sections() -> dict[str, type[BaseModel] | None]:
    """Every teacher a config may name -> its config class (plugins loaded on first use)."""
    global _teacher_plugins_loaded
    if not _teacher_plugins_loaded:
        _teacher_plugins_loaded = True
        load_entry_points(TEACHER_ENTRY_POINT_GROUP, "teacher")
    return dict(TEACHER_SECTIONS)


@functools.cache
def _sections_model() -> type[BaseModel]:
    """A model whose fields are the teachers' sections: validates what a config wrote, with
    pydantic's own locations (`teacher.local.batch_size: ...`, `teacher.gpt: unknown key`)."""
    fields: dict[str, Any] = {
        name: (cls | None, None) for name, cls in teacher_sections().items() if cls is not None
    }
    return create_model("TeacherSections", __base__=Strict, **fields)


class TeacherConfig(Strict):
    """The `teacher:` section: which teacher (`kind`, any registered name), the splits it
    explains, and one section per teacher with settings, validated by that teacher's class
    (`section()`). As a dump, the keys as they were before teachers registered."""

    kind: str = "heuristic"
    splits: list[str] = Field(default_factory=lambda: ["av_sft", "ar_sft", "eval"])
    next_tokens: int = Field(
        0,
        ge=0,
        le=10,
        description="add a last line naming the target's own N most likely next tokens (read from"
        " its logits, a fact about the model the text alone does not give); the text-only"
        " explanation is kept as the prompt the NLA is scored against. 0: off",
    )
    _sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _teacher_sections(cls, data: Any, handler: Any) -> TeacherConfig:
        if not isinstance(data, dict):
            return handler(data)
        written = {k: v for k, v in data.items() if k not in cls.model_fields}
        cfg = handler({k: v for k, v in data.items() if k in cls.model_fields})
        # raised as is: its locations nest under `teacher`, like any field's
        validated = _sections_model().model_validate(written)
        known = teacher_sections()
        wanted = [*ALWAYS_DUMPED_TEACHERS, *written, cfg.kind]
        sections: dict[str, BaseModel] = {}
        for name in dict.fromkeys(wanted):
            section_cls = known.get(name)
            if section_cls is not None:
                value = getattr(validated, name)
                sections[name] = value if value is not None else section_cls()
        cfg._sections = sections
        return cfg

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        known = teacher_sections()
        if kind not in known:
            raise ValueError(
                f"unknown teacher {kind!r}; known: {', '.join(sorted(known))} (a plugin teacher"
                " registers with nla_variants.data.teachers.registry.register_teacher)"
            )
        return kind

    @model_validator(mode="after")
    def _check(self) -> TeacherConfig:
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; known: {list(SPLITS)}")
        return self

    def section(self, name: str | None = None) -> BaseModel | None:
        """The validated settings of teacher `name` (default: the selected one); None for a
        teacher without settings."""
        name = name or self.kind
        if name in self._sections:
            return self._sections[name]
        section_cls = teacher_sections().get(name)
        return section_cls() if section_cls is not None else None

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any, info: Any) -> dict[str, Any]:
        """The keys in their order before teachers registered: kind, splits, the sections,
        next_tokens."""
        mode = "json" if info.mode_is_json() else "python"
        sections = {k: v.model_dump(mode=mode) for k, v in self._sections.items()}
        out: dict[str, Any] = {}
        for key, value in handler(self).items():
            if key == "next_tokens":
                out.update(sections)
            out[key] = value
        return {**out, **sections} if "next_tokens" not in out else out


class StoreConfig(Strict):
    root: str = Field(".nla/datasets", description="datasets live in ROOT/NAME-HASH/")
    shard_docs: int = Field(128, ge=1, description="documents per parquet shard")


class PrepareConfig(Strict):
    """Everything `nla prepare` needs: target, corpus, sampling, teacher, store."""

    name: str = Field("dataset", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: Seed = 0
    target: TargetConfig = Field(default_factory=TargetConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    @model_validator(mode="after")
    def _check(self) -> PrepareConfig:
        if self.teacher.next_tokens and self.target.diff_model:
            raise ValueError(
                "teacher.next_tokens reads one model's predictions, and a diff dataset's vectors"
                " belong to two; set teacher.next_tokens: 0 or drop target.diff_model"
            )
        return self


def get_dotted(data: dict, key: str) -> Any:
    """The value at a dotted key (`train.rl.steps`) of a nested dict; None where it is unset."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_dotted(
    data: dict,
    key: str,
    value: Any,
    what: str = "--set",
    fix: str = "set a leaf key like a.b=value",
) -> None:
    """Set a dotted key in a nested dict, creating missing sections; `what` and `fix` word the
    error when a section on the way holds a value."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise NLAError(f"{what} {key}: {part} is not a section", fix)
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `key.path=value` strings; the value is parsed as YAML (so 3 is an int, [a] a list)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise NLAError(f"--set {item!r} is not key=value", "write e.g. --set target.layer=12")
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            raise NLAError(
                f"--set {key.strip()}: {raw!r} is not a valid YAML value",
                "quote it (--set 'key=\"text\"') or write a complete list/mapping",
            ) from None
        set_dotted(data, key.strip(), value)
    return data


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file holding a mapping; a missing, undecodable or malformed file is an NLAError."""
    p = Path(path)
    if p.is_dir():
        raise NLAError(f"{what} {p} is a directory", "pass the path of a YAML file in it")
    if not p.is_file():
        raise NLAError(f"{what} file {p} does not exist", "pass the path of a YAML config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise NLAError(
            f"{what} {p} is not UTF-8 text (byte {e.start})", "save the file as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise NLAError(f"{what} {p} is not valid YAML{where}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise NLAError(f"{what} {p} must be a YAML mapping", "write key: value pairs")
    return data


def merge(base: dict, extra: dict) -> dict:
    """`extra` over a copy of `base`, mappings merged key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_config(path: str | Path, what: str = "config", _seen: tuple[Path, ...] = ()) -> dict:
    """A config mapping; a top-level `base: OTHER.yaml` (relative to this file) is read first
    and this file's keys are merged over it, so a config states only what it changes."""
    p = Path(path)
    data = read_yaml_mapping(p, what)
    parent = data.pop("base", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise NLAError(f"{what} {p}: base must be a file path", "write e.g. base: other.yaml")
    base_path = p.parent / parent
    if base_path.resolve() in _seen or base_path.resolve() == p.resolve():
        raise NLAError(f"{what} {p}: base {base_path} includes itself", "break the base cycle")
    if base_path.is_dir():
        raise NLAError(
            f"{what} {p}: base {base_path} is a directory",
            "set base: to a YAML file (a path relative to this file)",
        )
    if not base_path.is_file():
        raise NLAError(
            f"{what} {p}: base {base_path} does not exist",
            "set base: to a config path relative to this file",
        )
    return merge(read_config(base_path, what, (*_seen, p.resolve())), data)


def load_config(path: str | Path | None, model: type[T], overrides: list[str] | None = None) -> T:
    """Read YAML (and its `base:` chain, unless `base` is a field of the model itself, as in a
    sweep config), apply overrides, validate. Every failure is an NLAError with a fix."""
    data: dict = {}
    if path is not None:
        follow = "base" not in model.model_fields
        data = read_config(path) if follow else read_yaml_mapping(path, "config")
    data = apply_overrides(data, overrides or [])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise NLAError(
            f"config error: {format_validation_error(e)}",
            "correct that key (see configs/ for examples)",
        ) from None


class TrainConfig(Strict):
    """How every stage trains. `devices` x `num_nodes` processes share one trial through
    Lightning's `strategy`: each batch size below is the global batch, split evenly over them,
    so a config means the same at any device count (docs/scale_out.md)."""

    precision: Literal["auto", "bf16-mixed", "32-true"] = "auto"
    device: Device = Field(None, description="cpu | cuda (None: cuda when available)")
    devices: int = Field(1, ge=1, description="processes (one per GPU, or CPU processes) per node")
    num_nodes: int = Field(1, ge=1, description="machines; launch with torchrun or SLURM")
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = Field(
        "auto",
        description="auto: single device when devices x num_nodes is 1, else ddp (fsdp and "
        "deepspeed are refused for now: docs/scale_out.md)",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute block activations in the backward pass (large targets)"
    )
    av_sft: AVSFTConfig = Field(default_factory=AVSFTConfig)
    ar_sft: ARSFTConfig = Field(default_factory=ARSFTConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    save_checkpoints: bool | Literal["weights"] = Field(
        True,
        description="keep the final RL checkpoint (both models, both optimisers: ~3 GB at 135M) "
        "in the run dir; `weights`: the trained weights alone (what `nla explain` and `nla "
        "export` read, not resumable), a sweep's default",
    )
    reuse_warm_start: bool = Field(
        True, description="reuse a cached warm start whose configuration is identical"
    )
    warm_start_cache: str | None = Field(
        None, description="content-addressed warm starts; None: beside output_dir"
    )


class EvalConfig(Strict):
    max_samples: int = Field(256, ge=2, description="eval rows scored (all of them if fewer)")
    max_new_tokens: int = Field(96, ge=8)
    batch_size: int = Field(32, ge=1)
    table_rows: int = Field(24, ge=0, description="sample explanations logged to MLflow")
    quote_ngram: int = Field(3, ge=1)


class MLflowConfig(Strict):
    tracking_uri: str | None = Field(None, description="None: MLflow's local default (./mlflow.db)")
    experiment: str = "nla"
    log_checkpoints: bool = True


class TrialConfig(Strict):
    """One trial: data (prepared or found in the cache), AV and AR variants, training, eval."""

    name: str = Field("trial", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: Seed = 0
    data: PrepareConfig = Field(default_factory=PrepareConfig)
    # the sections as written (what is dumped and hashed) with their validated variant config
    av: AVSection = Field(default_factory=lambda: AVSection({"variant": "baseline"}))
    ar: ARSection = Field(default_factory=lambda: ARSection({"variant": "baseline"}))
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig)
    output_dir: str = ".nla/runs"

    @model_validator(mode="after")
    def _variants(self) -> TrialConfig:
        self.av.resolve()  # raises NLAError naming the key and the known variants
        self.ar.resolve()
        return self
