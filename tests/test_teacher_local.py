"""The `local` teacher: batched generation with the shared instruction; bad answers dropped."""

from __future__ import annotations

import torch

from nla_variants.data.teachers.base import INSTRUCTION
from nla_variants.data.teachers.local import LocalTeacher

PREFIXES = ["The ship left the harbor at dawn and", "def area(r):\n    return", "| a | b |\n| 1 |"]


def test_prompts_carry_the_instruction_and_the_prefix(tiny_model_dir):
    teacher = LocalTeacher(model=str(tiny_model_dir), batch_size=2, max_new_tokens=8)
    prompts = teacher.prompts(PREFIXES[:1])
    assert INSTRUCTION in prompts[0] and PREFIXES[0] in prompts[0]
    assert prompts[0].rstrip().endswith("assistant")


def test_random_model_answers_are_dropped_and_counted(tiny_model_dir):
    teacher = LocalTeacher(model=str(tiny_model_dir), batch_size=2, max_new_tokens=8)
    out = teacher.explain(PREFIXES)
    assert out == [None, None, None]
    s = teacher.stats
    assert (s.requested, s.produced, s.dropped) == (3, 0, 3)
    assert sum(s.extra.values()) == 3


def test_well_formed_answers_are_kept(tiny_model_dir, monkeypatch):
    teacher = LocalTeacher(model=str(tiny_model_dir), batch_size=4, max_new_tokens=40)
    target = teacher._load()
    tok = target.tokenizer
    good = tok("A story in the past tense\nEnds after the word and", add_special_tokens=False)
    answer = torch.tensor(good["input_ids"] + [tok.eos_token_id])

    def fake_generate(input_ids, attention_mask, **kwargs):
        batch = input_ids.shape[0]
        return torch.cat([input_ids, answer.expand(batch, -1)], dim=1)

    monkeypatch.setattr(target.model, "generate", fake_generate)
    out = teacher.explain(PREFIXES[:2])
    assert out == ["A story in the past tense\nEnds after the word and"] * 2
    assert teacher.stats.produced == 2 and teacher.stats.dropped == 0


def test_fingerprint_names_the_model_and_instruction(tiny_model_dir):
    fp = LocalTeacher(model=str(tiny_model_dir)).fingerprint()
    assert fp["name"] == "local" and fp["model"].startswith("local:")
    assert len(fp["instruction_sha"]) == 16
