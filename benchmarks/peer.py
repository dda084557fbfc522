"""Our training steps against the plain transformers loop a researcher would write in an
afternoon for the same work: same batch, one process, alternating order, repeated.

    python benchmarks/peer.py [--pieces av-full av-baseline ar rl] [--batch-av 16]
        [--batch-ar 32] [--repeats 3] [--steps 4] [--quick]

Pieces (quickstart dataset, split av_sft with explanations, embedded SmolLM2-135M-Instruct):
- `av-full`: the AV with every weight trained (`build("av", {"finetune": "full"})`, which is
  also what `build("av", {})` builds for a 135M target: full fine-tune, no frozen block, the
  vector replacing the placeholder's input embedding at the dataset's median norm).
- `av-baseline`: the AV of the baseline recipe (`configs/train_baseline.yaml`'s `av:` section:
  embedding and blocks 0-9 frozen, so the tied LM head too; the vector minus the training mean,
  added to the residual entering block 10 at that residual's norm).
- `ar`: the baseline AR (`build("ar", {})`: the first `layer` blocks, no final norm, the last
  token's state through an identity-initialised Linear(d, d) in fp32, normalised MSE).
- `rl`: one GRPO step (below) with the `av-baseline` AV, the default AR and a frozen reference
  copy of the AV, on a fixed batch of the `rl` split (vectors and prefixes of the rows a
  seed-0 trial's first RL step takes), with the recipe's RL settings
  (`configs/train_recipe.yaml`, at present: B = 4 rows x G = 8 samples at temperature 0.5, at
  most 80 new tokens, kl_coef 0.05, clip 0.2, inner_epochs 1, gradient clipping at 1,
  centered_cosine reward, AV lr 1e-5, AR lr 5e-5, no weight decay) except the AR's update:
  the recipe refits the AR's head in closed form, here the AR takes the paper's AdamW step on
  the closed rollouts (`train_ar: true, ar_ridge: null`, the override the recipe's comment
  gives). Both paths start from the same short SFT warm start of the AV
  (WARM_STEPS steps of ours, before anything is compared): the fresh AV never closes its
  explanation tag, so every reward would be the failure's, every advantage 0 and the AR would
  have nothing to train on.

SFT pieces. Ours is the step training takes: the component's loss under bf16 autocast,
backward, the optimiser training builds (`nla_variants.training.optim.adamw`, lr 1e-5), step,
zero_grad, with the frozen weights held in bf16 as under bf16-mixed and eager attention, as a
CPU trial runs it (set after the fairness checks below, which run on fp32 weights and SDPA; the
bf16 loss must not move, or by bf16 rounding only for the attention kernel). The plain loop
loads its own fp32 model with `AutoModelForCausalLM` / `AutoModel.from_pretrained` and trains
it the same way with torch's default AdamW (lr 1e-5).

Fairness (SFT pieces). The plain loop reads the token ids our component builds (the AV's
`prompt_ids` + `encode_responses`, the AR's `sequences`), right-padded the same way, and is told
only what it must reproduce: which blocks are frozen, the injection block, mode, norm and
centring, the placeholder position. The AV's vector enters through a forward pre-hook on the
same block (block 0 for the embedding site); the loss is `model(ids, attention_mask,
labels).loss` with labels -100 on the prompt and on padding (the mean NLL over response tokens,
as ours). Before timing, each piece checks that both models hold the same weights with the same
trainable set (by parameter name) and that their initial losses agree within a relative 2e-2
under bf16 autocast and 1e-4 in fp32 (the same function without bf16 rounding); it also prints
the plain loss with the vector not written (AV) or each row scored against another row's vector
(AR), so one sees the check can tell. A disagreement exits non-zero. (The fp32 check is the
sharp one: a vector written one position off, or not centred, moves the bf16 loss by less than
2e-2.)

RL step. Ours (`OursRL`) instantiates `RLModule` without a trainer and calls what does not need
one: `row_seeds` and `rollout` (the AV samples B x G explanations with seeded sampling in one
generate call, `score_rollouts` lets the AR predict each closed one, `Rollouts.reward`),
`configure_optimizers` (our fused AdamW for each; the schedules are constant without warm-up)
and `_ar_loss`; the rest of `training_step` (it needs `optimizers()`, `manual_backward` and the
loggers) is written out with the calls it makes: `group_advantages`, the reference's
`response_logprobs` without gradients, the policy's, `clipped_policy_loss` + kl_coef x
`kl_penalty`, backward, gradient clipping, the AV's step, then the AR's loss on the closed
rollouts, backward, clipping, step (left out: its finiteness checks and logged metrics). The
plain loop (`PlainRL`): `AutoModelForCausalLM` policy and frozen reference holding the warm
start's weights (`load_state_dict`), the vector written by `VectorHook` on both (prompt forward
only, not on cached decoding steps), `model.generate(do_sample=True, temperature=T, top_k=0,
top_p=1, max_new_tokens=N, num_return_sequences=G)` on the AV's prompt ids with the same
`CloseTagStop` stopping criterion as ours plus eos (a response is the tokens before the padding,
which is eos for SmolLM2: a row that ends with eos before closing its tag keeps no eos, ours
keeps it), the texts decoded and the explanation cut out with a regex, the reward from
`PlainAR`'s prediction by the same formula as `Rollouts.reward` (failure: -1, or -2 for mse),
then one forward each of reference (no gradients) and policy over prompt + response with a
labels-style gather of the log-probs, the group normalisation, clipped loss and k3 KL written
out, torch's AdamW (weight decay 0, as ours) with the same clipping, and the AR's normalised MSE
on the closed explanations (it tokenises them once for scoring and training; ours tokenises
them in both forwards). Both run the whole step under bf16 autocast; both score with the AR
without gradients and run it again to train it. After the checks, ours is set up as a CPU trial
runs it: the frozen weights of the AV and of the reference held in bf16, eager attention in the
AV, the reference and the AR (the plain loop keeps SDPA).

RL fairness. Sampling makes the two paths write different texts (ours draws from per-rollout
seeded generators, the plain loop from torch's RNG), so the checks run on one fixed set of
ours's rollouts: the same policy, reference and AR weights (names, values, trainable flags);
the policy's mean NLL of the rollouts' responses as the "initial loss" above (with the plain
NLL without the vector written as control); the same AR input ids; then, in bf16 and in fp32:
the rewards (the plain AR by the plain formula; O(1), so the worst row's absolute
difference) and the AR's loss (with the plain AR against another row's vectors as control);
the GRPO loss on ours's rewards and its gradient over the trained parameters, at the start
(where the loss equals minus the token mean of the advantages whatever the log-probs: ratio 1,
KL 0, so the value checks advantages and masking and the gradient checks the log-probs) and
again with both policies moved by av_lr x sign(-gradient) (where a first AdamW step goes), so
the KL and its gradient count; all within the tolerances above, except the gradient in bf16,
which is printed beside ours's own bf16-vs-fp32 gradient difference and not held to 2e-2 (a
group's advantages sum to 0, so the gradient's terms cancel and bf16 rounding is amplified);
it must agree in fp32. Per step, each path reports its tokens generated and trained (the AV's
prompt + response per rollout, the AR's template + explanation per closed rollout); the two
generate different numbers of tokens, so `rl`'s tokens/s is (generated + trained) / s, counted
per step, with the split (generate; score: the AR's prediction and the reward; update: the
rest) per path. FLOPs are not counted for `rl` (generation's depend on where each row stops
and on the batch's longest row): "n/a". Memory: `rl` holds two of each model and both loops'
optimiser states, and the plain loop's log-softmax runs over the whole vocabulary at every
position: about 12 GB resident at its peak (measured with `--quick`, whose `rl` batch is the
same).

Timing: 2 untimed warm-up steps per loop, then R repeats of S steps, the loop that goes first
alternating between repeats; the median tokens/s over repeats per loop (tokens: the batch's
non-padding tokens, prompt + response for the AV; for `rl` as above). Ours tokenises its texts
inside the step (as it does in training); in the SFT pieces the plain loop gets its ids
ready-made, as from a DataLoader. GFLOP/s count the work the step needs, the same for both
loops (as train_throughput.py: 6 x block parameters x tokens, the LM head on response tokens,
causal attention; forward only (2x) for frozen blocks and 4x for a frozen head), so the plain
loop's extra work (the LM head on prompt tokens) counts as its overhead. The bf16 ceiling is
measured right before and right after each piece's timing, and the fraction is of the higher of
the two (this host's ceiling moves between 677 and 2,059 GFLOP/s from one minute to the next).
Between loops and after the checks (untimed) the heap's free pages are handed back to the system
(glibc keeps them otherwise), so one loop's freed memory does not pile on the other's.
`--quick`: 1 repeat of 1 step at batch 4 (a smoke run; `rl` keeps the recipe's batch, 4 x 8).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from common import matmul_ceiling
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList
from transformers.utils import logging as hf_logging

from nla_variants.config import PrepareConfig, TrialConfig, load_config
from nla_variants.core.grpo import clipped_policy_loss, group_advantages, kl_penalty
from nla_variants.core.padding import pad_right
from nla_variants.core.vectors import mean_direction
from nla_variants.data.prepare import prepare
from nla_variants.data.store import SplitRows, StoredDataset
from nla_variants.evaluation.rollouts import Rollouts, ar_predict
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import rebuilt
from nla_variants.training.data import load_split
from nla_variants.training.optim import adamw
from nla_variants.training.rl import RLModule, batch_indices
from nla_variants.training.rl_config import RLConfig
from nla_variants.variants.ar.baseline import EXPLANATION_SLOT, BaselineARConfig
from nla_variants.variants.av.baseline import CloseTagStop
from nla_variants.variants.large_models import (
    frozen_weight_dtype,
    hold_frozen_weights,
    train_attention,
)
from nla_variants.variants.registry import BuildContext, build

BASELINE_RECIPE = "configs/train_baseline.yaml"
TOLERANCE = 2e-2  # relative, initial loss ours vs plain (bf16 autocast)
FP32_TOLERANCE = 1e-4  # the same, without autocast
PRECISIONS = ((torch.bfloat16, TOLERANCE), (torch.float32, FP32_TOLERANCE))
WARMUP = 2
PIECES = ("av-full", "av-baseline", "ar", "rl")
# rl: the recipe's RL settings with the paper's online AR trained by Adam (the override the
# recipe's comment gives: the recipe itself refits the AR's head in closed form instead)
RL_RECIPE = "configs/train_recipe.yaml"
RL_OVERRIDES = ["train.rl.train_ar=true", "train.rl.ar_ridge=null"]
# rl: the short SFT warm start both paths start from (the fresh AV never closes its tag)
WARM_STEPS, WARM_BATCH, WARM_LR = 20, 8, 3e-4


@dataclass
class Loop:
    """One training loop: a loss over the fixed batch, the module it trains, its AdamW."""

    name: str
    model: nn.Module
    loss: Callable[[], torch.Tensor]

    def __post_init__(self) -> None:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # ours: the optimiser training builds (fused where it can); plain: torch's default
        self.opt = (
            adamw(trainable, 1e-5, 0.01)
            if self.name == "ours"
            else torch.optim.AdamW(trainable, lr=1e-5)
        )

    @property
    def parts(self) -> nn.Module:
        """Every model the step runs (what `as_in_training` sets up)."""
        return self.model

    def step(self) -> None:
        """One step over the fixed batch (its tokens: the piece's)."""
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = self.loss()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()


@dataclass
class RLStats:
    """One RL step: tokens sampled, tokens trained (the AV's prompt + response per rollout,
    the AR's template + explanation per closed rollout), seconds per part."""

    generated: int
    trained: int
    seconds: dict[str, float]  # generate, score, update


@dataclass
class RLLoop:
    """One RL loop: `run` takes a whole step (under bf16 autocast, as training runs it) and says
    what it did; `loss` is the policy's NLL of one fixed set of rollouts (the fairness check)."""

    name: str
    model: nn.Module  # the policy (check_same_start)
    parts: nn.Module  # policy, reference and AR (as_in_training)
    loss: Callable[[], torch.Tensor]
    run: Callable[[], RLStats]
    log: list[RLStats] = field(default_factory=list)

    def step(self) -> int:
        """One step; returns its tokens (generated + trained: they vary from step to step)."""
        with torch.autocast("cpu", dtype=torch.bfloat16):
            stats = self.run()
        self.log.append(stats)
        return stats.generated + stats.trained


@dataclass
class Piece:
    name: str
    ours: Loop | RLLoop
    plain: Loop | RLLoop
    tokens: int | None  # non-padding tokens of the batch (None: counted per step)
    flops: float | None  # model FLOPs the step needs (None: not counted)
    control: Callable[[], torch.Tensor]  # the plain loss with the vector broken
    checks: Callable[[Piece], None] | None = None  # more fairness checks (rl)


# -- the plain AV ---------------------------------------------------------------------------------


def plain_causal_lm(path: str, frozen_blocks: int) -> nn.Module:
    """The model as a researcher loads it, with the embedding (tied: the LM head) and the first
    `frozen_blocks` blocks frozen when there are any."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).train()
    if frozen_blocks:
        model.model.embed_tokens.requires_grad_(False)
        for block in model.model.layers[:frozen_blocks]:
            block.requires_grad_(False)
    return model


class VectorHook:
    """A forward pre-hook on one block: the vector's direction (minus `mean` first, if given)
    written at position `slot` at norm `scale` (None: the norm of what is there), replacing or
    added to the residual. `on = False` leaves the residual alone (the control)."""

    def __init__(
        self,
        vectors: torch.Tensor,
        slot: int,
        scale: float | None,
        add: bool,
        mean: torch.Tensor | None,
    ) -> None:
        self.vectors, self.slot, self.scale, self.add, self.mean = vectors, slot, scale, add, mean
        self.on = True

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        if not self.on or args[0].shape[1] <= self.slot:  # a decoding step: the prompt is cached
            return None
        hidden = args[0].clone()
        old = hidden[:, self.slot].float()
        v = self.vectors.float() if self.mean is None else self.vectors.float() - self.mean
        norm = old.detach().norm(dim=-1, keepdim=True) if self.scale is None else self.scale
        new = F.normalize(v, dim=-1) * norm
        hidden[:, self.slot] = (old + new if self.add else new).to(hidden.dtype)
        return (hidden, *args[1:])


def av_piece(name: str, section: dict, ctx: BuildContext, rows: SplitRows, b: int) -> Piece:
    av = build("av", section, ctx).train()
    vectors, explanations = torch.from_numpy(rows.vectors[:b]), rows.explanations[:b]
    ours = Loop("ours", av, lambda: av.sft_loss(vectors, explanations))

    # the same token ids, padded the same way; labels only on the response
    prompt = av.prompt_ids.tolist()
    responses = av.encode_responses(explanations)
    ids, mask = pad_right([prompt + r for r in responses], av.pad_id)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, : len(prompt)] = -100

    inj = av.cfg.injection
    if inj.center == "standardize":
        raise SystemExit(f"{name}: the plain loop does not reproduce center: standardize")
    model = plain_causal_lm(ctx.source.load_path, av.cfg.frozen_blocks)
    mean = ctx.data_mean.float() if inj.center == "mean" else None
    hook = VectorHook(vectors, av.slot, av.scale, inj.mode == "add", mean)
    model.model.layers[inj.block].register_forward_pre_hook(hook)
    plain = Loop(
        "plain", model, lambda: model(input_ids=ids, attention_mask=mask, labels=labels).loss
    )

    def control() -> torch.Tensor:
        hook.on = False
        try:
            return plain.loss()
        finally:
            hook.on = True

    lengths = [len(prompt) + len(r) for r in responses]
    flops = av_flops(av.lm, lengths, sum(map(len, responses)), av.cfg.frozen_blocks)
    return Piece(name, ours, plain, sum(lengths), flops, control)


# -- the plain AR ---------------------------------------------------------------------------------


class PlainAR(nn.Module):
    """The first `n_blocks` blocks of the base model, no final norm, the last real token's state
    through Linear(d, d) initialised to the identity, run in fp32 (as ours)."""

    def __init__(self, path: str, n_blocks: int, d: int) -> None:
        super().__init__()
        self.backbone = AutoModel.from_pretrained(path, dtype=torch.float32)
        self.backbone.layers = self.backbone.layers[:n_blocks]
        self.backbone.norm = nn.Identity()
        self.head = nn.Linear(d, d)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(d))
            self.head.bias.zero_()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        last = hidden[torch.arange(len(ids)), mask.sum(1) - 1]
        with torch.autocast("cpu", enabled=False):
            return self.head(last.float())


def normalized_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (F.normalize(pred.float(), dim=-1) - F.normalize(target.float(), dim=-1)).pow(2).sum(-1)


def ar_piece(ctx: BuildContext, rows: SplitRows, b: int) -> Piece:
    ar = build("ar", {}, ctx).train()
    vectors, explanations = torch.from_numpy(rows.vectors[:b]), rows.explanations[:b]
    ours = Loop("ours", ar, lambda: ar.loss(explanations, vectors))

    seqs = ar.sequences(explanations)
    ids, mask = pad_right(seqs, ar.pad_id)
    model = PlainAR(ctx.source.load_path, ctx.layer, ctx.d_model).train()
    plain = Loop("plain", model, lambda: normalized_mse(model(ids, mask), vectors).mean())
    rolled = vectors.roll(1, 0)  # each row scored against another row's vector

    def control() -> torch.Tensor:
        return normalized_mse(model(ids, mask), rolled).mean()

    lengths = [len(s) for s in seqs]
    n, d = len(ar.backbone.layers), ctx.d_model
    flops = 6 * params(ar.backbone.layers) * sum(lengths) + attention_flops(n, n, d, lengths)
    return Piece("ar", ours, plain, sum(lengths), flops, control)


# -- rl: one GRPO step ----------------------------------------------------------------------------

CLOSED = re.compile(r"<explanation>(.*?)</explanation>", re.DOTALL)


def rl_config() -> RLConfig:
    cfg = load_config(RL_RECIPE, TrialConfig, RL_OVERRIDES).train.rl
    if cfg.inner_epochs != 1 or cfg.contrast:
        raise SystemExit("rl: the plain loop reproduces inner_epochs 1 and no contrast term only")
    return cfg


def warm_start(av: nn.Module, rows: SplitRows) -> float:
    """WARM_STEPS SFT steps of the AV (`sft_loss`, our AdamW at WARM_LR, bf16 autocast) on av_sft
    rows, so that its samples close their tag (the fresh AV never does: every reward would be
    the failure's, every advantage 0, and the AR would have nothing to train on). Returns the
    last loss."""
    opt = adamw([p for p in av.parameters() if p.requires_grad], WARM_LR, 0.0)
    for s in range(WARM_STEPS):
        i = slice(s * WARM_BATCH, (s + 1) * WARM_BATCH)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = av.sft_loss(torch.from_numpy(rows.vectors[i]), rows.explanations[i])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def update(opt: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float) -> None:
    """zero_grad, backward, clip the gradient norm, step (as training_step does per optimiser);
    the gradients are then dropped (training drops them at its next zero_grad, before any new
    one is made: the same work, without holding both loops' gradients while the other runs)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)


class OursRL:
    """Our RL step on a fixed batch. `RLModule` (without a trainer) gives the rollout (`rollout`:
    seeded sampling, `score_rollouts`, the reward), the row seeds, the optimisers
    (`configure_optimizers`; constant learning rates: the recipe has no warm-up) and the AR's
    loss (`_ar_loss`). The rest of `training_step` needs a Lightning trainer (`optimizers()`,
    `manual_backward`, loggers), so it is written out here with the calls it makes."""

    def __init__(
        self,
        av: nn.Module,
        ar: nn.Module,
        reference: nn.Module,
        rows: SplitRows,
        train_mean: torch.Tensor,
        cfg: RLConfig,
    ) -> None:
        self.module = RLModule(av, ar, reference, rows, train_mean, cfg, seed=0)
        (self.opt_av, self.opt_ar), _ = self.module.configure_optimizers()
        self.vectors, self.prefixes = torch.from_numpy(rows.vectors), list(rows.prefixes)

    def rollout(self) -> tuple[Rollouts, torch.Tensor]:
        m = self.module
        seeds = m.row_seeds(m.step_no, len(self.vectors))
        m.step_no += 1
        return m.rollout(self.vectors, self.prefixes, seeds)

    def responses(self, ro: Rollouts) -> list[list[int]]:
        return [t if t else [self.module.av.eos_id] for t in ro.tokens]

    def nll(self, ro: Rollouts) -> torch.Tensor:
        """The policy's mean NLL over the response tokens of the rollouts."""
        logp, mask = self.module.av.response_logprobs(ro.targets, self.responses(ro))
        return -(logp.sum() / mask.sum())

    def policy_loss(self, ro: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        """training_step's AV loss at inner_epochs 1 (the old log-probs: the policy's own)."""
        m, cfg = self.module, self.module.cfg
        responses = self.responses(ro)
        adv = group_advantages(rewards, cfg.group_size)
        with torch.no_grad():
            logp_ref, mask = m.reference.response_logprobs(ro.targets, responses)
        logp, _ = m.av.response_logprobs(ro.targets, responses)
        pg, _ = clipped_policy_loss(logp, logp.detach(), adv, mask, cfg.clip_eps)
        return pg + cfg.kl_coef * kl_penalty(logp, logp_ref, mask)

    def rewards(self, ro: Rollouts) -> torch.Tensor:
        """The rollouts' rewards with the AR's predictions made again, as score_rollouts does."""
        closed, ar = ro.closed, self.module.ar
        pred = torch.zeros_like(ro.pred)
        if closed:
            explanations = [ro.explanations[i] for i in closed]
            sources = [ro.sources[i] for i in closed]
            pred[closed] = ar_predict(ar, explanations, sources, len(closed))
        scored = dataclasses.replace(ro, pred=pred)
        return scored.reward(self.module.cfg.reward, self.module.train_mean)

    def ar_loss(self, ro: Rollouts) -> torch.Tensor:
        return self.module._ar_loss(ro, ro.closed, ro.targets)

    def step(self) -> RLStats:
        cfg, t = self.module.cfg, time.perf_counter()
        ro, rewards = self.rollout()
        update(self.opt_av, self.policy_loss(ro, rewards), cfg.grad_clip)
        if cfg.train_ar and ro.closed:
            update(self.opt_ar, self.ar_loss(ro), cfg.grad_clip)
        total = time.perf_counter() - t
        p = len(self.module.av.prompt_ids)
        explanations = [ro.explanations[i] for i in ro.closed]
        trained = sum(p + len(r) for r in self.responses(ro))
        trained += sum(map(len, self.module.ar.sequences(explanations))) if explanations else 0
        split = {**ro.seconds, "update": total - sum(ro.seconds.values())}
        return RLStats(sum(map(len, ro.tokens)), trained, split)


def plain_explanation(text: str) -> str | None:
    found = CLOSED.search(text)
    return (found.group(1).strip() or None) if found else None


class PlainRL:
    """The plain GRPO loop: policy and frozen reference loaded with `AutoModelForCausalLM` (the
    warm AV's weights, `load_state_dict`), the vector written by `VectorHook` on both,
    `generate` with torch's sampler, one forward each for the log-probs, the AR as `PlainAR`,
    torch's AdamW. It is told the AV's prompt ids, injection and stop rule (`CloseTagStop`), the
    AR's template and cap, and the reward kind with the training mean direction."""

    def __init__(
        self,
        ctx: BuildContext,
        av: nn.Module,
        rows: SplitRows,
        train_mean: torch.Tensor,
        cfg: RLConfig,
    ) -> None:
        path, inj, self.cfg = ctx.source.load_path, av.cfg.injection, cfg
        self.tok = AutoTokenizer.from_pretrained(path)
        self.eos = self.tok.eos_token_id
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos
        self.stop = StoppingCriteriaList([CloseTagStop(self.tok)])
        self.policy = plain_causal_lm(path, av.cfg.frozen_blocks)
        self.reference = plain_causal_lm(path, 0).requires_grad_(False).eval()
        for model in (self.policy, self.reference):
            model.load_state_dict(av.lm.state_dict())
        self.targets = torch.from_numpy(rows.vectors).repeat_interleave(cfg.group_size, 0)
        mean = ctx.data_mean.float() if inj.center == "mean" else None
        self.hook = VectorHook(self.targets, av.slot, av.scale, inj.mode == "add", mean)
        for model in (self.policy, self.reference):
            model.model.layers[inj.block].register_forward_pre_hook(self.hook)
        self.prompt = av.prompt_ids.tolist()
        self.ar = PlainAR(path, ctx.layer, ctx.d_model).train()
        ar_cfg = BaselineARConfig()
        self.before, self.after = ar_cfg.template.split(EXPLANATION_SLOT)
        self.cap = ar_cfg.max_explanation_tokens
        self.train_mean = train_mean.float()
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        self.opt_av = torch.optim.AdamW(trainable, lr=cfg.av_lr, weight_decay=0.0)
        self.opt_ar = torch.optim.AdamW(self.ar.parameters(), lr=cfg.ar_lr, weight_decay=0.0)

    @torch.no_grad()
    def generate(self) -> list[list[int]]:
        """B x G samples at the temperature, no top-k / top-p (softmax(logits / T), as ours);
        a response ends before the padding (finished rows are padded with pad = eos here)."""
        cfg = self.cfg
        ids = torch.tensor([self.prompt] * (len(self.targets) // cfg.group_size))
        out = self.policy.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=cfg.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=cfg.max_response_tokens,
            num_return_sequences=cfg.group_size,
            stopping_criteria=self.stop,
            eos_token_id=self.eos,
            pad_token_id=self.pad,
        )
        rows = out[:, len(self.prompt) :].tolist()
        return [(r[: r.index(self.pad)] if self.pad in r else r) or [self.eos] for r in rows]

    def logprobs(
        self, model: nn.Module, responses: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs of prompt + response (labels-style: logits at t, token t + 1) and
        the mask of response tokens."""
        ids, mask = pad_right([self.prompt + list(r) for r in responses], self.pad)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        logp = torch.log_softmax(logits, -1, dtype=torch.float32)
        logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        response = mask[:, 1:].float()
        response[:, : len(self.prompt) - 1] = 0
        return logp, response

    def nll(self, responses: Sequence[Sequence[int]]) -> torch.Tensor:
        logp, mask = self.logprobs(self.policy, responses)
        return -(logp * mask).sum() / mask.sum()

    def policy_loss(
        self, responses: Sequence[Sequence[int]], rewards: torch.Tensor
    ) -> torch.Tensor:
        """GRPO: group-normalised advantages, the clipped surrogate (ratio to the policy's own
        detached log-probs) plus kl_coef x the k3 KL to the reference, token mean."""
        cfg = self.cfg
        r = rewards.float().view(-1, cfg.group_size)
        std = r.std(1, unbiased=False, keepdim=True)
        adv = ((r - r.mean(1, keepdim=True)) / (std + 1e-6)).view(-1, 1)
        with torch.no_grad():
            ref, _ = self.logprobs(self.reference, responses)
        logp, mask = self.logprobs(self.policy, responses)
        ratio = torch.exp(logp - logp.detach())
        surrogate = torch.minimum(
            ratio * adv, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv
        )
        d = ref - logp
        per_token = -surrogate + cfg.kl_coef * (torch.exp(d) - d - 1)
        return (per_token * mask).sum() / mask.sum()

    def ar_sequences(self, explanations: Sequence[str]) -> list[list[int]]:
        def enc(text: str) -> list[int]:
            return self.tok(text, add_special_tokens=False)["input_ids"]

        return [enc(self.before) + enc(e)[: self.cap] + enc(self.after) for e in explanations]

    def rewards(
        self,
        explanations: Sequence[str | None],
        ids: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The reward kind from the AR's prediction of each closed explanation (`ids`, `mask`:
        theirs); a failed one scores -2 (mse) or -1 (centered_cosine)."""
        closed = [i for i, e in enumerate(explanations) if e is not None]
        reward = torch.full((len(explanations),), -2.0 if self.cfg.reward == "mse" else -1.0)
        if closed:
            with torch.no_grad():
                pred, target = self.ar(ids, mask), self.targets[closed]
            if self.cfg.reward == "mse":
                reward[closed] = -normalized_mse(pred, target)
            else:
                a = F.normalize(pred.float(), dim=-1) - self.train_mean
                b = F.normalize(target.float(), dim=-1) - self.train_mean
                reward[closed] = F.cosine_similarity(a, b, dim=-1, eps=1e-8)
        return reward

    def step(self) -> RLStats:
        cfg, t0 = self.cfg, time.perf_counter()
        responses = self.generate()
        texts = self.tok.batch_decode(responses, skip_special_tokens=True)
        t1 = time.perf_counter()
        explanations = [plain_explanation(t) for t in texts]
        closed = [i for i, e in enumerate(explanations) if e is not None]
        ids, mask = (
            pad_right(self.ar_sequences([explanations[i] for i in closed]), 0)
            if closed
            else (None, None)
        )
        rewards = self.rewards(explanations, ids, mask)
        t2 = time.perf_counter()
        update(self.opt_av, self.policy_loss(responses, rewards), cfg.grad_clip)
        if cfg.train_ar and closed:
            loss = normalized_mse(self.ar(ids, mask), self.targets[closed]).mean()
            update(self.opt_ar, loss, cfg.grad_clip)
        seconds = {"generate": t1 - t0, "score": t2 - t1, "update": time.perf_counter() - t2}
        prompt = len(self.prompt) * len(responses)
        trained = prompt + sum(map(len, responses)) + (int(mask.sum()) if closed else 0)
        return RLStats(sum(map(len, responses)), trained, seconds)


def rl_piece(ctx: BuildContext, ds: StoredDataset, sft_rows: SplitRows) -> Piece:
    cfg = rl_config()
    av = build("av", yaml.safe_load(Path(BASELINE_RECIPE).read_text())["av"], ctx).train()
    warm = warm_start(av, sft_rows)
    reference = rebuilt(av, "av", ctx)  # RLModule freezes it
    ar = build("ar", {}, ctx).train()
    rl_rows = load_split(ds, "rl")  # the rows a seed-0 trial's first RL step takes
    rows = rl_rows.take(batch_indices(len(rl_rows), cfg.batch_size, 0, 0))
    train_mean = mean_direction(torch.from_numpy(ds.training_vectors()))
    ours = OursRL(av, ar, reference, rows, train_mean, cfg)
    plain = PlainRL(ctx, av, rows, train_mean, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ro, rewards = ours.rollout()  # the fixed rollouts of the fairness checks
    responses = ours.responses(ro)
    print(
        f"  warm start: {WARM_STEPS} SFT steps (last loss {warm:.3f}); the fixed rollouts: "
        f"{len(ro.closed)}/{len(ro.texts)} closed, {sum(map(len, ro.tokens))} tokens"
    )
    parts = nn.ModuleDict({"av": av, "ar": ar, "reference": reference})
    ours_loop = RLLoop("ours", av, parts, lambda: ours.nll(ro), ours.step)
    plain_loop = RLLoop(
        "plain", plain.policy, plain.policy, lambda: plain.nll(responses), plain.step
    )

    def control() -> torch.Tensor:
        plain.hook.on = False
        try:
            return plain.nll(responses)
        finally:
            plain.hook.on = True

    def checks(piece: Piece) -> None:
        check_rl(piece, ours, plain, ro, rewards)

    return Piece("rl", ours_loop, plain_loop, None, None, control, checks)


def check_rl(
    piece: Piece, ours: OursRL, plain: PlainRL, ro: Rollouts, rewards: torch.Tensor
) -> None:
    """On the fixed rollouts (ours's samples): the same reference and AR weights and the same
    AR input ids; the rewards and the AR's loss (`check_scoring`); the GRPO loss on ours's
    rewards and its gradient at the start and with the policy moved as by a first AdamW step
    (`check_grpo`)."""
    m = ours.module
    compare_weights(piece, m.reference.lm, plain.reference, "reference")
    compare_weights(piece, m.ar, plain.ar, "AR")
    if not ro.closed:
        fail(piece, "no fixed rollout closed its tag: nothing to compare")
    if not torch.equal(ro.targets, plain.targets):
        fail(piece, "the rollouts' target vectors differ")
    explanations = [ro.explanations[i] for i in ro.closed]
    if plain.ar_sequences(explanations) != m.ar.sequences(explanations):
        fail(piece, "the AR's input ids differ")
    check_scoring(piece, ours, plain, ro)
    direction = check_grpo(piece, ours, plain, ro, rewards, "at the start")
    with moved(ours, plain, direction, m.cfg.av_lr):
        check_grpo(piece, ours, plain, ro, rewards, "after a first AdamW-sized step")


def check_scoring(piece: Piece, ours: OursRL, plain: PlainRL, ro: Rollouts) -> None:
    """In bf16 and fp32: the rewards (the plain AR's, by the plain formula; O(1), so compared
    absolutely at the row where they differ most) and the AR's loss on the closed rollouts
    (and the plain AR's against another row's vectors, the control)."""
    closed, g = ro.closed, ours.module.cfg.group_size
    ids, mask = pad_right(plain.ar_sequences([ro.explanations[i] for i in closed]), 0)
    targets, other = ro.targets[closed], ro.targets.roll(g, 0)[closed]
    for dtype, tolerance in PRECISIONS:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32), torch.no_grad():
            r_ours, r_plain = ours.rewards(ro), plain.rewards(ro.explanations, ids, mask)
            ar_ours, pred = float(ours.ar_loss(ro)), plain.ar(ids, mask)
            ar_plain = float(normalized_mse(pred, targets).mean())
            control = float(normalized_mse(pred, other).mean())
        worst = int((r_ours - r_plain).abs().argmax())
        reward, ar = abs(float(r_ours[worst] - r_plain[worst])), rel(ar_ours, ar_plain)
        name = str(dtype)[6:]
        print(
            f"  rl {name}: reward (worst row) ours {r_ours[worst]:.6f}, plain "
            f"{r_plain[worst]:.6f}; AR loss ours {ar_ours:.6f}, plain {ar_plain:.6f} ({ar:.1e}), "
            f"plain against another row's vectors {control:.6f}"
        )
        if not (reward <= tolerance and ar <= tolerance):
            fail(piece, f"{name} rewards or AR losses differ by {max(reward, ar):.1e}")


def check_grpo(
    piece: Piece, ours: OursRL, plain: PlainRL, ro: Rollouts, rewards: torch.Tensor, when: str
) -> list[torch.Tensor]:
    """In bf16 and fp32: the GRPO loss on ours's rewards and its gradient over the trained
    parameters; returns ours's fp32 gradient. At the start the loss is the same number whatever
    the log-probs (ratio 1, KL 0), its gradient is not; moved, the KL counts too. The gradient
    must agree in fp32; in bf16 it is shown beside ours's own bf16-vs-fp32 difference (a
    group's advantages sum to 0, so its terms cancel: bf16 rounding is not held to 2e-2)."""
    grads: list[list[torch.Tensor]] = []
    for dtype, tolerance in PRECISIONS:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            # one graph at a time: each is freed by its gradient
            a, grad_ours = loss_and_gradient(ours.module.av.lm, ours.policy_loss(ro, rewards))
            responses = ours.responses(ro)
            b, grad_plain = loss_and_gradient(plain.policy, plain.policy_loss(responses, rewards))
        grads.append(grad_ours)
        name, loss, grad = str(dtype)[6:], rel(a, b), difference(grad_ours, grad_plain)
        floor = f" (ours's bf16 one vs its fp32 one {difference(grad_ours, grads[0]):.1e})"
        print(
            f"  rl {name} {when}: GRPO loss ours {a:.6f}, plain {b:.6f} ({loss:.1e}), its "
            f"gradient {grad:.1e}" + (floor if grads[1:] else "")
        )
        if not loss <= tolerance:
            fail(piece, f"{name} GRPO losses {when} differ by {loss:.1e} > {tolerance}")
        if dtype == torch.float32 and not grad <= tolerance:
            fail(piece, f"fp32 GRPO gradients {when} differ by {grad:.1e} > {tolerance}")
    return grads[-1]


@contextmanager
def moved(ours: OursRL, plain: PlainRL, gradient: list[torch.Tensor], lr: float) -> Iterator[None]:
    """Both policies' trained weights moved by lr x sign(-gradient) (where a first AdamW step
    goes: its update is lr x m / sqrt(v) = lr x sign(g) at step 1), so the KL to the reference
    is not 0; then put back."""
    named = trainable(ours.module.av.lm)
    others = dict(plain.policy.named_parameters())
    saved = [p.detach().clone() for _, p in named]
    with torch.no_grad():
        for (name, p), g in zip(named, gradient, strict=True):
            p.sub_(lr * g.sign())
            others[name].copy_(p)
    try:
        yield
    finally:
        with torch.no_grad():
            for (name, p), start in zip(named, saved, strict=True):
                p.copy_(start)
                others[name].copy_(start)


def rel(ours: float, plain: float) -> float:
    return abs(ours - plain) / max(abs(ours), 1e-12)


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The trained parameters, in name order."""
    return sorted(
        ((n, p) for n, p in model.named_parameters() if p.requires_grad), key=lambda x: x[0]
    )


def loss_and_gradient(model: nn.Module, loss: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """The loss and its gradient for each trained parameter of `model`, in name order."""
    grads = torch.autograd.grad(loss, [p for _, p in trainable(model)])
    value = float(loss.detach())
    del loss
    release_memory()
    return value, [g.float() for g in grads]


def difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """|a - b| / |a| over all parameters."""
    diff = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b, strict=True))
    return (diff / max(sum(float(x.pow(2).sum()) for x in a), 1e-30)) ** 0.5


# -- FLOPs ----------------------------------------------------------------------------------------


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def attention_flops(n_blocks: int, trained: int, d: int, lengths: Sequence[int]) -> float:
    """Causal QK^T and AV: forward in every block, backward (2x) in the trained ones."""
    return sum((n_blocks + 2 * trained) * 2 * 2 * d * n * n / 2 for n in lengths)


def av_flops(lm: nn.Module, lengths: Sequence[int], response_tokens: int, frozen: int) -> float:
    """train_throughput.py's count, with forward only for frozen blocks; a frozen (tied) head
    still passes the gradient to its input (4x instead of 6x)."""
    blocks = lm.model.layers
    tokens = sum(lengths)
    block_flops = 2 * params(blocks) * tokens + 4 * params(blocks[frozen:]) * tokens
    head = (4 if frozen else 6) * lm.lm_head.weight.numel() * response_tokens
    d = lm.config.hidden_size
    return block_flops + head + attention_flops(len(blocks), len(blocks) - frozen, d, lengths)


# -- fairness -------------------------------------------------------------------------------------


def check_same_start(piece: Piece) -> None:
    """Same parameter names, values and trainable flags in both models (ours: the AV's LM)."""
    ours = piece.ours.model
    compare_weights(piece, ours.lm if hasattr(ours, "lm") else ours, piece.plain.model)


def compare_weights(piece: Piece, ours: nn.Module, plain: nn.Module, what: str = "") -> None:
    a, b = dict(ours.named_parameters()), dict(plain.named_parameters())
    if a.keys() != b.keys():
        fail(piece, f"{what} parameter names differ: {sorted(a.keys() ^ b.keys())[:6]}")
    for name, p in a.items():
        if p.requires_grad != b[name].requires_grad or not torch.equal(p, b[name]):
            fail(piece, f"{what} {name} differs (value or trainable flag)")
    trained = sum(p.numel() for p in a.values() if p.requires_grad)
    print(
        f"  same start{' (' + what + ')' if what else ''}: {len(a)} tensors equal, "
        f"{trained / 1e6:.1f}M trainable in both"
    )


@torch.no_grad()
def initial_losses(piece: Piece, dtype: torch.dtype) -> tuple[float, float, float]:
    """(ours, plain, plain with the vector broken) before any step, under autocast to dtype."""
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        return float(piece.ours.loss()), float(piece.plain.loss()), float(piece.control())


def check_initial_loss(piece: Piece) -> None:
    """bf16 (the timed precision) within TOLERANCE; fp32, where both compute the same
    function without bf16 rounding, within FP32_TOLERANCE."""
    for dtype, tolerance in PRECISIONS:
        ours, plain, control = initial_losses(piece, dtype)
        rel = abs(ours - plain) / abs(ours)
        print(
            f"  initial loss {str(dtype)[6:]}: ours {ours:.6f}, plain {plain:.6f} (relative "
            f"difference {rel:.1e}); plain with the vector broken {control:.6f}"
        )
        if not rel <= tolerance:
            fail(piece, f"{dtype} initial losses differ by {rel:.1e} > {tolerance}")


def as_in_training(piece: Piece) -> None:
    """Then ours is set up as a CPU trial sets it up under bf16-mixed: frozen weights held in
    bf16 (autocast would cast them at every forward anyway: the bf16 loss must not move) and
    eager attention (`train_attention`: the same function in another kernel, so the loss may
    move by bf16 rounding only)."""
    before = initial_losses(piece, torch.bfloat16)[0]
    held = hold_frozen_weights(piece.ours.parts, frozen_weight_dtype("cpu", "bf16-mixed"))
    after = initial_losses(piece, torch.bfloat16)[0]
    if after != before:
        fail(piece, "holding the frozen weights in bf16 changed our loss")
    train_attention(piece.ours.parts, "cpu")
    eager = initial_losses(piece, torch.bfloat16)[0]
    print(
        f"  ours as trained: {held / 1e6:.1f}M frozen weights in bf16 (bf16 loss {before:.6f} "
        f"-> {after:.6f}), eager attention (-> {eager:.6f})"
    )
    if not abs(eager - before) <= TOLERANCE * abs(before):
        fail(piece, f"eager attention moved our loss from {before:.6f} to {eager:.6f}")


def release_memory() -> None:
    """Collect garbage and give the heap's free pages back (glibc keeps them: the checks' fp32
    graphs would leave GBs resident on a shared machine through the timing)."""
    gc.collect()
    with suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def fail(piece: Piece, why: str) -> None:
    raise SystemExit(f"{piece.name}: the plain loop is not the same work: {why}")


# -- timing ---------------------------------------------------------------------------------------


def tokens_per_second(loop: Loop | RLLoop, steps: int, tokens: int | None) -> float:
    """`steps` steps of the loop; its tokens: the piece's per step, or what each step says."""
    done, t = 0, time.perf_counter()
    for _ in range(steps):
        made = loop.step()
        done += tokens if made is None else made
    return done / (time.perf_counter() - t)


def time_piece(piece: Piece, repeats: int, steps: int) -> dict[str, float]:
    """Median tokens/s per loop over `repeats`, the loop that goes first alternating; between
    loops (untimed) the heap's free pages go back to the system."""
    loops = [piece.ours, piece.plain]
    for loop in loops:
        for _ in range(WARMUP):
            loop.step()
        release_memory()
    rates: dict[str, list[float]] = {loop.name: [] for loop in loops}
    for r in range(repeats):
        for loop in loops if r % 2 == 0 else loops[::-1]:
            rates[loop.name].append(tokens_per_second(loop, steps, piece.tokens))
            release_memory()  # untimed: one loop's freed heap does not pile on the other's
    return {name: statistics.median(rs) for name, rs in rates.items()}


def report(piece: Piece, rates: dict[str, float], ceiling: float, cpu: str) -> None:
    for name, rate in rates.items():
        if piece.flops is None:
            flops = "GFLOP/s n/a"
        else:
            gflops = piece.flops * rate / piece.tokens / 1e9
            flops = (
                f"{gflops:5.1f} GFLOP/s = {gflops / ceiling:.1%} of the bf16 ceiling "
                f"{ceiling:.0f} GFLOP/s ({cpu})"
            )
        print(f"  {name:5s}: {rate:7.0f} tok/s, {flops}")
    print(f"  ours / plain: {rates['ours'] / rates['plain']:.2f}x")
    for loop in (piece.ours, piece.plain):
        if isinstance(loop, RLLoop):
            report_steps(loop)


def report_steps(loop: RLLoop) -> None:
    """An RL loop's timed steps (after the warm-up): medians of tokens and seconds per part."""
    timed = loop.log[WARMUP:]

    def median(f: Callable[[RLStats], float]) -> float:
        return statistics.median(f(s) for s in timed)

    split = ", ".join(f"{k} {median(lambda s, k=k: s.seconds[k]):.1f}" for k in timed[0].seconds)
    total = median(lambda s: sum(s.seconds.values()))
    print(
        f"  {loop.name:5s} per step: {median(lambda s: s.generated):.0f} tokens generated + "
        f"{median(lambda s: s.trained):.0f} trained, {total:.1f} s ({split} s)"
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def context(ds: StoredDataset) -> BuildContext:
    """As a trial builds it: the median norm, and the mean/std of the SFT vectors (centring)."""
    return BuildContext.from_dataset(resolve_model("embedded"), ds)


def make_piece(
    name: str, ctx: BuildContext, ds: StoredDataset, rows: SplitRows, args: argparse.Namespace
) -> Piece:
    if name == "rl":
        return rl_piece(ctx, ds, rows)
    if name == "av-full":
        return av_piece(name, {"finetune": "full"}, ctx, rows, args.batch_av)
    if name == "av-baseline":
        section = yaml.safe_load(Path(BASELINE_RECIPE).read_text())["av"]
        return av_piece(name, section, ctx, rows, args.batch_av)
    return ar_piece(ctx, rows, args.batch_ar)


def header(name: str, args: argparse.Namespace) -> str:
    if name == "rl":
        cfg = rl_config()
        return (
            f"rl: batch {cfg.batch_size} x {cfg.group_size} samples (the recipe's), up to "
            f"{cfg.max_response_tokens} new tokens at temperature {cfg.temperature}; tokens "
            "(generated + trained) counted per step, FLOPs n/a"
        )
    return f"{name}: batch {args.batch_ar if name == 'ar' else args.batch_av}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pieces", nargs="+", choices=PIECES, default=list(PIECES))
    ap.add_argument("--batch-av", type=int, default=16)
    ap.add_argument("--batch-ar", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="1 repeat of 1 step at batch 4")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.steps, args.batch_av, args.batch_ar = 1, 1, 4, 4
    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    ds = StoredDataset.open(prepare(load_config("configs/quickstart.yaml", PrepareConfig)).path)
    rows = load_split(ds, "av_sft").with_explanations()
    ctx = context(ds)
    ceiling, cpu = matmul_ceiling(torch.bfloat16), cpu_model()
    print(
        f"bf16 matmul ceiling {ceiling:.0f} GFLOP/s at the start on {cpu}, "
        f"{torch.get_num_threads()} threads; "
        f"{args.repeats} repeats x {args.steps} steps after {WARMUP} warm-up"
    )
    for name in args.pieces:
        print(header(name, args))
        piece = make_piece(name, ctx, ds, rows, args)
        if piece.tokens is not None:
            print(f"  {piece.tokens} tokens, {piece.flops / 1e9:.0f} GFLOP/step")
        check_same_start(piece)
        check_initial_loss(piece)
        if piece.checks is not None:
            piece.checks(piece)
        as_in_training(piece)
        release_memory()
        before = matmul_ceiling(torch.bfloat16)
        rates = time_piece(piece, args.repeats, args.steps)
        after = matmul_ceiling(torch.bfloat16)
        print(f"  bf16 ceiling before and after the timing: {before:.0f}, {after:.0f} GFLOP/s")
        report(piece, rates, max(before, after), cpu)
        del piece
        release_memory()


if __name__ == "__main__":
    main()
