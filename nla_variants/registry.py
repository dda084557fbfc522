"""The variant registry: AV and AR components registered by name with their own config class.

    @register_av("baseline", BaselineAVConfig)
    class BaselineAV(nn.Module): ...

A trial config selects `av.variant` / `ar.variant`; the remaining keys of that section are
validated by the variant's config class (so a sweep can search them). Third-party packages add
variants through the `nla_variants.variants` entry-point group: each entry point names a module
(or callable) whose import registers its variants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from nla_variants.errors import NLAError

Kind = Literal["av", "ar"]
ENTRY_POINT_GROUP = "nla_variants.variants"


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
        cls.variant_name = name
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
        import nla_variants.ar  # noqa: F401  (registers built-in AR variants)
        import nla_variants.av  # noqa: F401  (registers built-in AV variants)
    if not _loaded_plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as e:  # a broken plugin must say which one it is
                raise NLAError(
                    f"variant plugin {ep.name!r} ({ep.value}) failed to import: {e}",
                    "fix or uninstall that package",
                ) from e
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


def variant_config(kind: Kind, section: dict[str, Any]) -> tuple[Variant, BaseModel]:
    """Split a config section into its variant and that variant's validated config."""
    params = dict(section)
    variant = get_variant(kind, str(params.pop("variant", "baseline")))
    try:
        return variant, variant.config_cls.model_validate(params)
    except ValidationError as e:
        from nla_variants.config import format_validation_error

        raise NLAError(
            f"config error: {kind} ({variant.name}): {format_validation_error(e)}",
            f"see the fields of {variant.config_cls.__name__}",
        ) from None


def build(kind: Kind, section: dict[str, Any], ctx: BuildContext) -> Any:
    """Instantiate the variant a config section selects."""
    variant, cfg = variant_config(kind, section)
    return variant.cls(cfg, ctx)
