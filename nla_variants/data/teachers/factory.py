"""Build the configured teacher. Imports are lazy so an offline run never imports the SDK."""

from __future__ import annotations

from pathlib import Path

from nla_variants.config import TeacherConfig
from nla_variants.data.teachers.base import Teacher


def make_teacher(cfg: TeacherConfig, seed: int, cache_dir: Path) -> Teacher:
    """A ready teacher; raises NLAError (e.g. a missing API key) before any work is done."""
    if cfg.kind == "heuristic":
        from nla_variants.data.teachers.heuristic import HeuristicTeacher

        return HeuristicTeacher(seed=seed)
    if cfg.kind == "local":
        from nla_variants.data.teachers.local import LocalTeacher

        return LocalTeacher(**cfg.local.model_dump())
    from nla_variants.data.teachers.claude import ClaudeTeacher

    ClaudeTeacher.check_key()
    return ClaudeTeacher(**cfg.anthropic.model_dump(), cache_dir=cache_dir / "anthropic")
