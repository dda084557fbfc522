"""The teacher registry: teachers registered by name with their own config class.

    @register_teacher("echo", config=EchoTeacherConfig)
    class EchoTeacher(Teacher):
        def __init__(self, cfg: EchoTeacherConfig, ctx: TeacherContext) -> None: ...

A dataset config selects `teacher.kind: echo`; its section `teacher.echo:` is validated by
`EchoTeacherConfig` when the config loads (`nla_variants.config.TeacherConfig`), and
`make_teacher` builds the teacher from it. What is registered is a Teacher subclass or any
function of the same `(cfg, ctx)` (the built-ins register functions that import their module
only when built, so an offline run never imports the Anthropic SDK: `factory.py`). A teacher
without settings registers with `config=None` and receives `cfg=None`. Register before the
config loads: import the module, or name it in the `nla_variants.teachers` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nla_variants.common.errors import NLAError
from nla_variants.config import TeacherConfig, declare_teacher, teacher_sections
from nla_variants.data.teachers.base import Teacher

# Imported by name on first lookup: it imports this module to register the built-ins.
BUILTIN_TEACHER_MODULES = ("nla_variants.data.teachers.factory",)


@dataclass(frozen=True)
class TeacherContext:
    """What a teacher may need besides its own settings."""

    seed: int  # the dataset's seed (a teacher that varies its phrasing keys it on the seed)
    cache_dir: Path  # where teachers keep caches; one teacher uses cache_dir / its name


@dataclass(frozen=True)
class RegisteredTeacher:
    name: str
    build: Callable[[Any, TeacherContext], Teacher]  # a Teacher subclass or a function
    config_cls: type[BaseModel] | None


_REGISTRY: dict[str, RegisteredTeacher] = {}
_loaded_builtin = False


def register_teacher(
    name: str, config: type[BaseModel] | None = None
) -> Callable[[Callable], Callable]:
    """Decorator: register a teacher (a class or builder function taking `(cfg, ctx)`) under
    `name`, its `teacher.NAME:` section validated by `config`."""

    def decorator(build: Callable) -> Callable:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.build is not build:
            raise ValueError(f"teacher {name!r} is already registered by {existing.build}")
        declare_teacher(name, config)
        _REGISTRY[name] = RegisteredTeacher(name, build, config)
        if isinstance(build, type):
            build.name = name  # the Teacher attribute fingerprints and messages use
            build.config_class = config
        return build

    return decorator


def _ensure_loaded() -> None:
    global _loaded_builtin
    if not _loaded_builtin:
        _loaded_builtin = True
        for module in BUILTIN_TEACHER_MODULES:
            import_module(module)
    teacher_sections()  # plugins of the entry-point group


def teachers() -> dict[str, RegisteredTeacher]:
    _ensure_loaded()
    return dict(_REGISTRY)


def get_teacher(name: str) -> RegisteredTeacher:
    known = teachers()
    if name not in known:
        raise NLAError(
            f"teacher {name!r} is declared for configs but has no registered code",
            f"register it with @register_teacher, or use one of: {', '.join(sorted(known))}",
        )
    return known[name]


def make_teacher(cfg: TeacherConfig, seed: int, cache_dir: Path) -> Teacher:
    """A ready teacher of `cfg.kind` built from its validated section; raises NLAError (e.g. a
    missing API key) before any work is done."""
    entry = get_teacher(cfg.kind)
    return entry.build(cfg.section(), TeacherContext(seed=seed, cache_dir=Path(cache_dir)))
