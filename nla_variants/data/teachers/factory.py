"""The built-in teachers' registrations. Each builder imports its teacher only when built, so an
offline run never imports the Anthropic SDK; their config classes are in `nla_variants.config`
(`TEACHER_SECTIONS`), where a config naming them validates."""

from __future__ import annotations

from nla_variants.config import AnthropicTeacherConfig, LocalTeacherConfig
from nla_variants.data.teachers.base import Teacher
from nla_variants.data.teachers.registry import TeacherContext, make_teacher, register_teacher

__all__ = ["make_teacher"]


@register_teacher("heuristic")
def heuristic(cfg: None, ctx: TeacherContext) -> Teacher:
    from nla_variants.data.teachers.heuristic import HeuristicTeacher

    return HeuristicTeacher(seed=ctx.seed)


@register_teacher("local", config=LocalTeacherConfig)
def local(cfg: LocalTeacherConfig, ctx: TeacherContext) -> Teacher:
    from nla_variants.data.teachers.local import LocalTeacher

    return LocalTeacher(**cfg.model_dump())


@register_teacher("anthropic", config=AnthropicTeacherConfig)
def anthropic(cfg: AnthropicTeacherConfig, ctx: TeacherContext) -> Teacher:
    from nla_variants.data.teachers.claude import ClaudeTeacher

    ClaudeTeacher.check_key()
    return ClaudeTeacher(**cfg.model_dump(), cache_dir=ctx.cache_dir / "anthropic")
