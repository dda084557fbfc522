"""The baseline Activation Verbalizer: a trainable copy of the target that reads the activation
through one placeholder token of a fixed chat prompt and writes a tagged explanation.

The placeholder is a rare token chosen automatically for the tokenizer: a string that tokenises to
exactly one token inside the prompt. It is located by id, verified by its neighbours and counted
per sequence, so an injection that silently misses is an error rather than a model that trains on
the raw token (which for a CJK placeholder shows up as CJK text in the explanations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F
from transformers import DynamicCache, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from nla_variants.common.errors import NLAError
from nla_variants.common.strict import Strict
from nla_variants.core.injection import InjectionConfig, Injector, center, resolve_scale
from nla_variants.core.padding import pad_right
from nla_variants.core.sampling import SeededSampling, rollout_seeds
from nla_variants.core.text import CLOSE_TAG, extract_explanation, wrap_explanation
from nla_variants.target import (
    autocast_context,
    decoder_blocks,
    embedding_multiplier,
    load_lm,
)
from nla_variants.variants.large_models import head_cast_once, resolve_finetune
from nla_variants.variants.registry import BuildContext, TargetDims, register_av

PLACEHOLDER_SLOT = "{placeholder}"


class BaselineAVConfig(Strict):
    injection: InjectionConfig = Field(
        default_factory=InjectionConfig, description="where and how the vector enters"
    )
    finetune: Literal["auto", "full", "lora"] = Field(
        "auto",
        description="auto: lora above LORA_AUTO_THRESHOLD target parameters (1e9), else full; "
        "the checkpoint records the choice",
    )
    frozen_blocks: int = Field(
        0,
        ge=0,
        description="keep the input embedding (tied: the LM head too) and the first N blocks "
        "frozen; with the injection at block k >= N the backward pass stops at block N",
    )
    lora_r: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    system: str = "You read activation vectors and explain them."  # "": no system turn
    prompt: str = (
        "Here is an activation vector from a language model: {placeholder}\n"
        "Explain what the model is thinking about."
    )
    max_response_tokens: int = Field(96, ge=8, description="cap on explanation tokens")
    placeholder: str | None = Field(
        None, description="the placeholder string (an imported NLA's); None: chosen automatically"
    )

    @field_validator("prompt")
    @classmethod
    def _one_slot(cls, prompt: str) -> str:
        if prompt.count(PLACEHOLDER_SLOT) != 1:
            raise ValueError(
                f"the AV prompt must contain {PLACEHOLDER_SLOT} exactly once (where the vector "
                f"enters), found {prompt.count(PLACEHOLDER_SLOT)}"
            )
        return prompt

    def check_target(self, dims: TargetDims) -> None:
        """The injection site and the frozen blocks fit the AV, a copy of the whole target."""
        self.injection.check_target(dims.num_layers)
        if self.frozen_blocks >= dims.num_layers:
            raise NLAError(
                f"av.frozen_blocks {self.frozen_blocks} leaves none of the target's "
                f"{dims.num_layers} blocks to train",
                f"use at most {dims.num_layers - 1}",
            )


@dataclass(frozen=True)
class Placeholder:
    """Where the vector enters: its token id, the string that produces it, and its neighbours."""

    text: str
    token_id: int
    left_id: int
    right_id: int


def _render_prompt(tokenizer, system: str, prompt: str, text: str) -> list[int]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt.replace(PLACEHOLDER_SLOT, text)})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])


def choose_placeholder(
    tokenizer, system: str, prompt: str, count: int = 1, fixed: str | None = None
) -> tuple[Placeholder, list[int]]:
    """The highest-id (latest-merged, so rare) non-ASCII single-token string that appears as
    exactly `count` tokens of its id in the rendered prompt. Deterministic for a tokenizer.
    `fixed`: only that string (an imported NLA's placeholder) is tried."""
    if prompt.count(PLACEHOLDER_SLOT) != 1:
        raise ValueError(f"the AV prompt must contain {PLACEHOLDER_SLOT} exactly once")
    special = set(tokenizer.all_special_ids)
    candidates = range(len(tokenizer) - 1, 0, -1)
    if fixed is not None:
        ids = tokenizer.encode(fixed, add_special_tokens=False)
        candidates = ids if len(ids) == 1 else []
    for token_id in candidates:
        if token_id in special:
            continue
        text = tokenizer.decode([token_id])
        if not text or text.isascii() or any(c.isspace() for c in text) or "\ufffd" in text:
            continue
        ids = _render_prompt(tokenizer, system, prompt, text * count)
        if ids.count(token_id) != count:
            continue
        first = ids.index(token_id)
        last = first + count - 1
        if last + 1 >= len(ids) or ids[first : last + 1] != [token_id] * count or first == 0:
            continue
        return Placeholder(text, token_id, ids[first - 1], ids[last + 1]), ids
    raise RuntimeError("no single-token placeholder found for this tokenizer")


class CloseTagStop(StoppingCriteria):
    """Stop a row once its last few tokens decode to text containing the closing tag.
    (transformers' `stop_strings` precomputes a table over the whole vocabulary in Python,
    which costs tens of seconds per tokenizer; decoding a short tail per step costs little.)"""

    def __init__(self, tokenizer, tail: int = 8) -> None:
        self.tokenizer = tokenizer
        self.tail = tail

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        tails = self.tokenizer.batch_decode(input_ids[:, -self.tail :].tolist())
        return torch.tensor([CLOSE_TAG in t for t in tails], device=input_ids.device)


@register_av("baseline", BaselineAVConfig)
class BaselineAV(nn.Module):
    """Vector -> explanation. Subclasses change how the vector enters (`vector_inputs`, and
    `n_slots`: how many placeholder tokens it fills, passed to this constructor) and keep the
    SFT loss, log-probs and generation."""

    # extra configurations the contract suite (nla_variants.variants.testing) checks besides the defaults
    contract_configs: dict[str, dict] = {
        "lora": {"finetune": "lora"},
        "residual": {"injection": {"site": 1, "mode": "add", "scale": "match", "center": "mean"}},
    }

    def __init__(self, cfg: BaselineAVConfig, ctx: BuildContext, n_slots: int = 1) -> None:
        super().__init__()
        # `auto` resolved here and kept resolved: checkpoints and exports rebuild what was built
        cfg = cfg.model_copy(update={"finetune": resolve_finetune(cfg.finetune, ctx.source)})
        self.cfg = cfg
        self.n_slots = n_slots  # placeholder tokens the vector fills (vector_inputs' k)
        lm, self.tokenizer = load_lm(ctx.source)
        with torch.no_grad():  # the rows as block 0 receives them (Gemma scales by sqrt(d))
            rows = lm.get_input_embeddings().weight.norm(dim=-1).mean()
            self.embed_norm = float(rows) * embedding_multiplier(lm)
        # Gemma soft-caps its logits: log-probs must come from the distribution generate samples
        self.logit_cap = getattr(lm.config, "final_logit_softcapping", None)
        if cfg.finetune == "lora":
            from peft import LoraConfig, get_peft_model

            lm = get_peft_model(
                lm,
                LoraConfig(
                    r=cfg.lora_r,
                    lora_alpha=cfg.lora_alpha,
                    lora_dropout=cfg.lora_dropout,
                    target_modules="all-linear",
                ),
            )
        self.lm = lm
        if cfg.frozen_blocks:
            layers = decoder_blocks(self._decoder)
            if cfg.frozen_blocks >= len(layers):
                raise NLAError(
                    f"av.frozen_blocks {cfg.frozen_blocks} leaves none of the {len(layers)} "
                    "blocks to train",
                    f"use at most {len(layers) - 1}",
                )
            self.lm.get_input_embeddings().requires_grad_(False)
            for block in layers[: cfg.frozen_blocks]:
                block.requires_grad_(False)
        self.placeholder, prompt_ids = choose_placeholder(
            self.tokenizer, cfg.system, cfg.prompt, self.n_slots, cfg.placeholder
        )
        self.register_buffer("prompt_ids", torch.tensor(prompt_ids), persistent=False)
        self.slot = prompt_ids.index(self.placeholder.token_id)  # first placeholder position
        inj = cfg.injection
        self.scale = resolve_scale(inj.scale, ctx.d_model, ctx.data_norm, self.embed_norm)
        for name, stat in (("data_mean", ctx.data_mean), ("data_std", ctx.data_std)):
            value = None if stat is None else torch.as_tensor(stat, dtype=torch.float32)
            self.register_buffer(name, value, persistent=False)
        center(torch.zeros(1, ctx.d_model), inj.center, self.data_mean, self.data_std)  # checks
        self.injector = Injector(inj, self.scale, decoder_blocks(self._decoder))
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # -- pieces a variant may override -----------------------------------------------------------

    def vector_inputs(self, vectors: torch.Tensor) -> torch.Tensor:
        """What replaces the placeholder embeddings: [B, n_slots, d] (here: the vector itself)."""
        return vectors.unsqueeze(1)

    def render_target(self, explanation: str) -> str:
        """A teacher explanation in this AV's output format (the body inside the tags): what
        the AV is warm-started to write and what the AR should be warm-started to read. A
        variant that overrides it records what the rendering depends on in
        `metadata()["schema"]` (the AR's warm-start cache key)."""
        return explanation

    def extract(self, text: str) -> str | None:
        """The explanation in a generation, or None for a failed extraction (unclosed tag here;
        a variant with an output format also rejects violations). RL gives None the failure
        reward and evaluation counts it in `tag_failure_rate`."""
        return extract_explanation(text)

    def metadata(self) -> dict:
        """Recorded in the checkpoint sidecar."""
        return {
            "placeholder": asdict(self.placeholder),
            "injection": {**self.cfg.injection.model_dump(mode="json"), "norm": self.scale},
            "n_slots": self.n_slots,
            "prompt_tokens": len(self.prompt_ids),
        }

    # -- shared machinery ---------------------------------------------------------------------------

    @property
    def _base(self) -> nn.Module:
        """The causal LM under a PEFT wrapper (or the LM itself)."""
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    @property
    def _decoder(self) -> nn.Module:
        return self._base.get_decoder()

    @property
    def _head(self) -> nn.Module:
        return self._base.get_output_embeddings()

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """fp32 next-token logits of final hidden states, soft-capped where the model caps
        them (Gemma), so they are the logits the full model's forward and `generate` use."""
        logits = self._head(hidden).float()
        if self.logit_cap:
            logits = torch.tanh(logits / self.logit_cap) * self.logit_cap
        return logits

    def injecting(self, ids: torch.Tensor, vectors: torch.Tensor, start: int = 0):
        """Context for forward passes over `ids[:, start:]` (rows starting with the fixed prompt)
        that writes the vectors at the placeholder slots, after checking every row's neighbours.
        `start` > 0: the passes run only from that position, the rest is in their KV cache."""
        pos, k = self.slot, self.n_slots
        left, right = ids[:, pos - 1], ids[:, pos + k]
        if not (
            bool((left == self.placeholder.left_id).all())
            and bool((right == self.placeholder.right_id).all())
        ):
            raise RuntimeError("placeholder neighbours changed: the prompt is not the fixed one")
        mask = ids[:, start:] == self.placeholder.token_id
        inj = self.cfg.injection
        values = self.vector_inputs(center(vectors, inj.center, self.data_mean, self.data_std))
        return self.injector.active(mask, values)

    @cached_property
    def _close_tag_stop(self) -> StoppingCriteria:
        return CloseTagStop(self.tokenizer)

    @torch.no_grad()
    def verify_injection(self) -> None:
        """Fail loudly if the vector does not reach the model: two different vectors must give
        different next-token logits at the end of the prompt."""
        d = self.lm.get_input_embeddings().weight.shape[1]
        g = torch.Generator().manual_seed(0)
        vectors = torch.randn(2, d, generator=g).to(self.prompt_ids.device)
        if self.data_mean is not None:  # centring must not cancel them
            vectors = vectors * 10 + self.data_mean
        ids = self.prompt_ids.expand(2, -1)
        # frozen weights held in bf16 (BuildContext.frozen_dtype) need autocast even here
        low = any(p.dtype == torch.bfloat16 for p in self.lm.parameters())
        cast = autocast_context(ids.device, torch.bfloat16 if low else torch.float32)
        with cast, self.injecting(ids, vectors):
            hidden = self._decoder(input_ids=ids).last_hidden_state
        logits = self._logits(hidden[:, -1])
        if torch.allclose(logits[0], logits[1]):
            raise RuntimeError("injection has no effect: the AV never sees the activation")

    def encode_responses(self, explanations: Sequence[str]) -> list[list[int]]:
        """Teacher explanations as response tokens: rendered by `render_target`, tagged, plus
        end-of-turn, capped at max_response_tokens."""
        out = []
        for text in explanations:
            tagged = wrap_explanation(self.render_target(text))
            ids = self.tokenizer(tagged, add_special_tokens=False)["input_ids"]
            out.append(list(ids)[: self.cfg.max_response_tokens - 1] + [self.eos_id])
        return out

    def response_logprobs(
        self, vectors: torch.Tensor, responses: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs of given responses: ([B, R], mask [B, R]). The LM head runs only
        on response tokens (a 49k-vocab head over the prompt or the padding is thrown away)."""
        p, r = len(self.prompt_ids), max(len(x) for x in responses)
        prompt = self.prompt_ids.tolist()
        seqs = [prompt + list(resp) for resp in responses]
        ids, mask = pad_right(seqs, self.pad_id, self.prompt_ids.device)
        s, cache = self._shared_prefix(len(ids))
        with self.injecting(ids, vectors, start=s):
            hidden = self._decoder(
                input_ids=ids[:, s:], attention_mask=mask, cache=cache
            ).last_hidden_state
        # the head and its softmax only where a response token is, not on the padding
        real = mask[:, p:].bool()
        logits = self._logits(hidden[:, p - 1 - s : p + r - 1 - s][real])
        nll = F.cross_entropy(logits, ids[:, p:][real], reduction="none")
        logp = torch.zeros(real.shape, dtype=nll.dtype, device=nll.device)
        return logp.masked_scatter(real, -nll), real.to(nll.dtype)

    def _shared_prefix(self, b: int) -> tuple[int, DynamicCache | None]:
        """The prompt before the first placeholder never sees the vector (attention is causal),
        so every row's keys and values there are the same: run it once and hand a batch of `b`
        the cache (its gradient sums over the rows). At batch 16 of the quickstart's rows this
        skips about 30% of the tokens. Returns where the batch's own forward starts and the
        cache (0 and None where sharing does not apply: one row, or checkpointed blocks, whose
        recomputation would write the cache twice)."""
        s = self.slot
        if b == 1 or s == 0 or self.lm.is_activation_checkpointing:
            return 0, None
        cache = DynamicCache(config=self.lm.config)
        self._decoder(input_ids=self.prompt_ids[None, :s], cache=cache, use_cache=True)
        cache.batch_repeat_interleave(b)
        return s, cache

    def sft_loss(self, vectors: torch.Tensor, explanations: Sequence[str]) -> torch.Tensor:
        """Mean next-token NLL over response tokens only (targets rendered by
        `render_target` inside `encode_responses`)."""
        logp, mask = self.response_logprobs(vectors, self.encode_responses(explanations))
        return -(logp.sum() / mask.sum())

    @torch.no_grad()
    def generate(
        self,
        vectors: torch.Tensor,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        num_samples: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> tuple[list[str], list[list[int]]]:
        """Batched KV-cached generation from input embeddings (every prompt has the same length,
        so no padding), stopping at the closing tag or end of turn. Returns texts and token ids,
        `num_samples` consecutive rows per vector. `seeds` (one per vector) make sampling a
        function of each seed alone (core/sampling.py); without them it draws from torch's RNG."""
        seeded = None
        if seeds is not None and temperature > 0:
            seeded = SeededSampling(rollout_seeds(seeds, num_samples), temperature, vectors.device)
        if num_samples > 1:
            vectors = vectors.repeat_interleave(num_samples, 0)
        b, p = len(vectors), len(self.prompt_ids)
        ids = self.prompt_ids.expand(b, p)
        sampling = temperature > 0 and seeded is None
        # Pad finished rows with the placeholder id, not EOS (they are the same token in many
        # chat tokenizers), so a sampled EOS stays distinguishable from padding.
        gen_pad = self.placeholder.token_id
        with self.injecting(ids, vectors), head_cast_once(self._base):
            out = self.lm.generate(
                input_ids=ids,
                attention_mask=torch.ones((b, p), dtype=torch.long, device=ids.device),
                max_new_tokens=max_new_tokens or self.cfg.max_response_tokens,
                do_sample=sampling,
                temperature=temperature if sampling else None,
                top_p=None,
                top_k=None,
                stopping_criteria=StoppingCriteriaList([self._close_tag_stop]),
                logits_processor=LogitsProcessorList([seeded] if seeded else []),
                eos_token_id=self.eos_id,
                pad_token_id=gen_pad,
            )
        out = out[:, p:]  # generate returns the prompt too when it is given as ids
        tokens = []
        for row in out.tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id) + 1]
            while row and row[-1] == gen_pad:
                row.pop()
            tokens.append(row)
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return texts, tokens
