"""Teachers: explanation providers for the warm start (heuristic, local model, Claude)."""

from nla_variants.data.teachers.base import INSTRUCTION, Teacher, TeacherStats, parse_explanation

__all__ = ["INSTRUCTION", "Teacher", "TeacherStats", "parse_explanation"]
