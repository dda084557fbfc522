"""The variant registry: AV and AR components registered by name with their own config class.

    @register_av("baseline", BaselineAVConfig)
    class BaselineAV(nn.Module): ...

A trial config selects `av.variant` / `ar.variant`; the remaining keys of that section are
validated by the variant's config class (so a sweep can search them). A trial carries each
section as an `AVSection` / `ARSection`: the keys as written plus the variant they select and its
validated config. Third-party packages add variants through the `nla_variants.variants`
entry-point group: each entry point names a module (or callable) whose import registers its
variants. The interface a variant implements is written down in `nla_variants.variants.interfaces`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, GetCoreSchemaHandler, ValidationError
from pydantic_core import core_schema

from nla_variants.common.errors import NLAError, format_validation_error
from nla_variants.common.plugins import load_entry_points
from nla_variants.common.schema import DatasetSidecar

Kind = Literal["av", "ar"]
ENTRY_POINT_GROUP = "nla_variants.variants"
# Imported by name on first lookup: they import this module to register themselves, so a static
# import here would make the registry and every built-in variant a cycle.
BUILTIN_VARIANT_MODULES = ("nla_variants.variants.ar", "nla_variants.variants.av")


@dataclass(frozen=True)
class BuildContext:
    """What a variant needs to know about the target and the data to build itself."""

    source: Any  # nla_variants.target.ModelSource
    layer: int
    d_model: int
    data_norm: float | None = None  # median activation norm of the dataset
    # per-dimension mean and std of the raw training vectors (an AV's injection centring)
    data_mean: Any = None  # torch.Tensor [d] or None
    data_std: Any = None
    # torch.bfloat16: hold every built component's frozen Linear weights in it (a trial
    # under bf16-mixed, `nla_variants.variants.large_models.frozen_weight_dtype`); None: as loaded
    frozen_dtype: Any = None

    @classmethod
    def from_dataset(
        cls, source: Any, dataset: HoldsTrainingVectors, frozen_dtype: Any = None
    ) -> BuildContext:
        """As a trial builds it: the layer and width the dataset was extracted at, its median
        norm (the `data` injection scale) and the per-dimension mean and std of its SFT vectors
        (the injection's centring)."""
        import torch

        side = dataset.meta
        vectors = torch.from_numpy(dataset.training_vectors())
        return cls(
            source,
            side.layer,
            side.d_model,
            side.injection_norm,
            data_mean=vectors.mean(0),
            data_std=vectors.std(0),
            frozen_dtype=frozen_dtype,
        )


class HoldsTrainingVectors(Protocol):
    """What `BuildContext.from_dataset` reads: `nla_variants.data.store.StoredDataset` (a room
    above this one, so named by what it offers, not imported)."""

    @property
    def meta(self) -> DatasetSidecar: ...

    def training_vectors(self) -> Any: ...


@dataclass(frozen=True)
class TargetDims:
    """The target's shape as its config.json gives it, and the extraction layer: what a variant
    config checks itself against before any weight loads (`ChecksTarget.check_target`)."""

    num_layers: int
    d_model: int
    layer: int


@dataclass(frozen=True)
class Variant:
    kind: Kind
    name: str
    cls: type
    config_cls: type[BaseModel]


_REGISTRY: dict[Kind, dict[str, Variant]] = {"av": {}, "ar": {}}
_loaded_builtin = False
_loaded_plugins = False


def _register(kind: Kind, name: str, config_cls: type[BaseModel]) -> Callable[[type], type]:
    def decorator(cls: type) -> type:
        existing = _REGISTRY[kind].get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(f"{kind} variant {name!r} is already registered by {existing.cls}")
        _REGISTRY[kind][name] = Variant(kind, name, cls, config_cls)
        cls.variant_name = name  # both are members of the interface (variants.interfaces)
        cls.config_class = config_cls
        return cls

    return decorator


def register_av(name: str, config_cls: type[BaseModel]) -> Callable[[type], type]:
    """Class decorator: register an Activation Verbalizer variant."""
    return _register("av", name, config_cls)


def register_ar(name: str, config_cls: type[BaseModel]) -> Callable[[type], type]:
    """Class decorator: register an Activation Reconstructor variant."""
    return _register("ar", name, config_cls)


def _ensure_loaded() -> None:
    """Import the built-in variants, then plugins from the entry-point group (once)."""
    global _loaded_builtin, _loaded_plugins
    if not _loaded_builtin:
        _loaded_builtin = True
        for module in BUILTIN_VARIANT_MODULES:
            import_module(module)
    if not _loaded_plugins:
        load_entry_points(ENTRY_POINT_GROUP, "variant")
        _loaded_plugins = True


def variants(kind: Kind) -> dict[str, Variant]:
    _ensure_loaded()
    return dict(_REGISTRY[kind])


def get_variant(kind: Kind, name: str) -> Variant:
    known = variants(kind)
    if name not in known:
        raise NLAError(
            f"unknown {kind} variant {name!r}",
            f"use one of: {', '.join(sorted(known))}",
        )
    return known[name]


def variant_config(kind: Kind, section: Mapping[str, Any]) -> tuple[Variant, BaseModel]:
    """Split a config section into its variant and that variant's validated config (a trial's
    `VariantSection` was validated when the trial loaded: its result is reused)."""
    if isinstance(section, VariantSection) and section.kind == kind:
        return section.resolve()
    params = dict(section)
    variant = get_variant(kind, str(params.pop("variant", "baseline")))
    try:
        return variant, variant.config_cls.model_validate(params)
    except ValidationError as e:
        raise NLAError(
            f"config error: {kind} ({variant.name}): {format_validation_error(e)}",
            f"see the fields of {variant.config_cls.__name__}",
        ) from None


def _instantiate(variant: Variant, cfg: BaseModel, ctx: BuildContext) -> Any:
    component = variant.cls(cfg, ctx)
    if ctx.frozen_dtype is not None:
        from nla_variants.variants.large_models import hold_frozen_weights

        hold_frozen_weights(component, ctx.frozen_dtype)
    return component


def build(kind: Kind, section: Mapping[str, Any], ctx: BuildContext) -> Any:
    """Instantiate the variant a config section selects."""
    variant, cfg = variant_config(kind, section)
    return _instantiate(variant, cfg, ctx)


class VariantSection(Mapping[str, Any]):
    """A trial's `av:` / `ar:` section. As a read-only mapping it is the keys as written: what
    is serialised, logged and hashed (warm-start cache keys), byte for byte as before sections
    were typed. `variant` and `config` are what those keys select, validated once (on first use;
    `TrialConfig` asks at load, so a bad section fails there)."""

    kind: ClassVar[Kind]

    def __init__(self, section: Mapping[str, Any]) -> None:
        self._section = dict(section)
        self._resolved: tuple[Variant, BaseModel] | None = None

    def resolve(self) -> tuple[Variant, BaseModel]:
        """The variant and its validated config; an NLAError names a bad key or variant."""
        if self._resolved is None:
            self._resolved = variant_config(self.kind, self._section)
        return self._resolved

    @property
    def variant(self) -> Variant:
        return self.resolve()[0]

    @property
    def config(self) -> BaseModel:
        return self.resolve()[1]

    def build(self, ctx: BuildContext) -> Any:
        """Instantiate the selected variant from the validated config."""
        variant, cfg = self.resolve()
        return _instantiate(variant, cfg, ctx)

    def check_target(self, dims: TargetDims) -> None:
        """The selected variant's config against the target's shape, if its config class has
        that check (`nla_variants.variants.interfaces.ChecksTarget`); an NLAError names the key."""
        check = getattr(self.config, "check_target", None)
        if callable(check):
            check(dims)

    def as_dict(self) -> dict[str, Any]:
        """The keys as written (a copy of the top level)."""
        return dict(self._section)

    def __getitem__(self, key: str) -> Any:
        return self._section[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._section)

    def __len__(self) -> int:
        return len(self._section)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._section!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validated as the plain `dict[str, Any]` it replaces and serialised back to it, so
        dumps, MLflow params and cache keys are unchanged."""
        as_dict = core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())
        return core_schema.no_info_after_validator_function(
            cls,
            as_dict,
            serialization=core_schema.plain_serializer_function_ser_schema(
                cls.as_dict, return_schema=as_dict
            ),
        )


class AVSection(VariantSection):
    kind = "av"


class ARSection(VariantSection):
    kind = "ar"
