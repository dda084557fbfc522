"""The `local` teacher: any local instruct model answers the same instruction as Claude does.

Generation is batched (left padding, KV cache, greedy) through transformers' `generate`. Small
models often miss the format; such answers are dropped and counted, never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nla_variants.common.hashing import hash_text
from nla_variants.data.teachers.base import INSTRUCTION, Teacher, parse_explanation
from nla_variants.target import TargetModel, resolve_model

USER_TEMPLATE = "Text (cut off at an arbitrary point):\n<<<\n{prefix}\n>>>"


class LocalTeacher(Teacher):
    name = "local"

    def __init__(
        self,
        model: str = "embedded",
        batch_size: int = 16,
        max_new_tokens: int = 80,
        precision: str = "auto",
    ) -> None:
        super().__init__()
        self.spec = model
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.precision = precision
        self._target: TargetModel | None = None

    def fingerprint(self) -> dict:
        return {
            "name": self.name,
            "model": resolve_model(self.spec).fingerprint,
            "instruction_sha": hash_text(INSTRUCTION + USER_TEMPLATE, 16),
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
        }

    def _load(self) -> TargetModel:
        if self._target is None:
            self._target = TargetModel(self.spec, self.precision)
        return self._target

    def prompts(self, prefixes: Sequence[str]) -> list[str]:
        tok = self._load().tokenizer
        return [
            tok.apply_chat_template(
                [
                    {"role": "system", "content": INSTRUCTION},
                    {"role": "user", "content": USER_TEMPLATE.format(prefix=p)},
                ],
                tokenize=False,
                add_generation_prompt=True,
            )
            for p in prefixes
        ]

    @torch.inference_mode()
    def explain(self, prefixes: Sequence[str]) -> list[str | None]:
        target = self._load()
        tok = target.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        out: list[str | None] = []
        for start in range(0, len(prefixes), self.batch_size):
            chunk = self.prompts(prefixes[start : start + self.batch_size])
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(target.device)
            with target.autocast():
                gen = target.model.generate(
                    **enc,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for row in new:
                finished = bool((row == tok.eos_token_id).any())
                text = tok.decode(row, skip_special_tokens=True)
                answer = parse_explanation(text) if finished else None
                out.append(answer)
                self.stats.requested += 1
                if answer is None:
                    self.stats.dropped += 1
                    key = "malformed" if finished else "truncated"
                    self.stats.extra[key] = self.stats.extra.get(key, 0) + 1
                else:
                    self.stats.produced += 1
        return out

    def close(self) -> None:
        self._target = None
