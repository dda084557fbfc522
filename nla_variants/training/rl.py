"""RL stage: GRPO on the AV with an online AR, as one LightningModule (manual optimisation,
two optimisers).

One step: B activations -> B x G explanations sampled in one KV-cached batched generate call ->
every closed explanation scored by the AR in one batched forward (reward = -normalised MSE, or
with `reward: centered_cosine` the cosine after subtracting the mean direction; a response
without a closed tag, or cut by the cap, gets the worst reward (-2 or -1) and is left out of AR
training) -> group-normalised advantages -> clipped policy loss + KL to the frozen
warm-start AV (reference log-probs computed once per rollout, without gradients) -> AV step ->
AR step by supervised normalised MSE on the same rollouts (or, with `ar_ridge`, the fixed AR's
head refit in closed form every few steps on teacher rows plus every closed rollout so far).

Data order is a function of (seed, step) and RNG states travel in checkpoints, so a run resumed
from a mid-RL checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from nla_variants.common import distributed
from nla_variants.common.errors import TrialStopped
from nla_variants.common.io import atomic_path, write_yaml_atomic
from nla_variants.core.grpo import clipped_policy_loss, group_advantages, kl_penalty
from nla_variants.core.sampling import seed_of
from nla_variants.core.vectors import (
    baseline_mse,
    fve,
    normalize,
)
from nla_variants.data.store import SplitRows
from nla_variants.evaluation.rollouts import Rollouts, score_rollouts
from nla_variants.training.callbacks import PeriodicEval
from nla_variants.training.checkpoint import (
    load_component,
    load_optimizer_state,
    read_sidecar,
    rebuilt,
    save_checkpoint,
)
from nla_variants.training.data import load_split
from nla_variants.training.optim import adamw
from nla_variants.training.readout import fit_head, head_features, head_inputs, linear_head
from nla_variants.training.rl_config import RLConfig
from nla_variants.training.trial import Trial
from nla_variants.variants.large_models import (
    enable_gradient_checkpointing,
    hold_frozen_weights,
    train_attention,
)
from nla_variants.variants.registry import BuildContext

log = logging.getLogger(__name__)

STATE = "rl_state.yaml"
RNG = "rng.safetensors"
RIDGE = "ridge_rows.safetensors"


def _mean_over_ranks(metrics: dict[str, float]) -> dict[str, float]:
    """Each metric's mean over the ranks that have it (the whole-batch figures are already the
    same on every rank)."""
    seen: dict[str, list[float]] = {}
    for part in distributed.gather_objects(metrics):
        for key, value in part.items():
            seen.setdefault(key, []).append(value)
    return {key: float(np.mean(values)) for key, values in seen.items()}


class NonFiniteError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or reward: the trial has diverged."""


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The rows a step trains on: a pure function of (seed, step), so resuming is exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(n, generator=g)[:batch_size].tolist()


def warmup_constant(warmup: int):
    """RL learning rate: linear warm-up over an optimiser's first `warmup` updates (the first
    at lr / warmup), then constant. The schedule counts that optimiser's own updates: an RL
    step where it did not update (the AR when no explanation closed, either on a skipped
    non-finite step) does not use up warm-up. A resumed run restores the count from the
    checkpoint, so it follows the same schedule update for update."""
    return lambda updates: min(1.0, (updates + 1) / warmup) if warmup else 1.0


def _grad_norm(params: list[nn.Parameter], clip: float) -> float:
    return float(torch.nn.utils.clip_grad_norm_(params, clip))


class RLModule(L.LightningModule):
    """GRPO on the AV (optimiser 0) with the AR trained online (optimiser 1)."""

    def __init__(
        self,
        av: nn.Module,
        ar: nn.Module,
        reference: nn.Module,
        rows: SplitRows,
        train_mean: torch.Tensor,
        cfg: RLConfig,
        seed: int,
        start_step: int = 0,
        ridge_rows: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """`ridge_rows`: (head features, vectors) the `ar_ridge` refit starts from (teacher rows,
        or a resumed run's rows so far); every closed rollout is added to them."""
        super().__init__()
        self.automatic_optimization = False
        self.av, self.ar = av, ar
        self.reference = reference.requires_grad_(False).eval()
        self.rows = rows
        self.register_buffer("train_mean", train_mean.float(), persistent=False)
        self.cfg = cfg
        self.seed = seed
        self.step_no = start_step
        self.nonfinite_in_a_row = 0
        self.skipped = 0
        self.history: list[dict[str, float]] = []
        if cfg.ar_ridge is not None and ridge_rows is None:
            raise ValueError("rl.ar_ridge needs the rows its refit starts from (ridge_rows)")
        self.ridge_feats = [ridge_rows[0].float()] if ridge_rows else []
        self.ridge_vecs = [ridge_rows[1].float()] if ridge_rows else []

    def configure_optimizers(self):
        cfg = self.cfg
        av_params = [p for p in self.av.parameters() if p.requires_grad]
        opt_av = adamw(av_params, cfg.av_lr, 0.0)
        opt_ar = adamw(self.ar.parameters(), cfg.ar_lr, 0.0)
        scheds = [
            torch.optim.lr_scheduler.LambdaLR(o, warmup_constant(cfg.warmup_steps))
            for o in (opt_av, opt_ar)
        ]
        return [opt_av, opt_ar], scheds

    # -- one GRPO step ----------------------------------------------------------------------------

    def rollout(
        self,
        vectors: torch.Tensor,
        prefixes: list[str] | None = None,
        seeds: list[int] | None = None,
    ) -> tuple[Rollouts, torch.Tensor]:
        """Sample and score B x G explanations with the shared scorer (rollouts.py); no
        gradients. `prefixes` (one per vector) reach the AR as the sources of its samples (a
        full-context AR reads them); `seeds`, one per vector, fix each row's samples. Returns
        the rollouts and their rewards."""
        cfg = self.cfg
        prefixes = [""] * len(vectors) if prefixes is None else prefixes
        refit = cfg.ar_ridge is not None
        with head_inputs(self.ar) if refit else nullcontext([]) as seen:
            ro = score_rollouts(
                self.av,
                self.ar,
                vectors,
                prefixes,
                max_new_tokens=cfg.max_response_tokens,
                batch_size=len(vectors),
                samples=cfg.group_size,
                temperature=cfg.temperature,
                seeds=seeds,
            )
        ok = ro.ok
        if refit:  # the fixed AR's features of every rank's closed rollouts: the next refit's rows
            width = linear_head(self.ar).in_features
            feats = torch.cat(seen) if seen else torch.zeros(0, width)
            self.ridge_feats.append(distributed.gather_rows(feats))
            self.ridge_vecs.append(distributed.gather_rows(ro.targets[ok]))
        rewards = ro.reward(cfg.reward, self.train_mean)
        if cfg.contrast and bool(ok.any()):
            rewards[ok] += cfg.contrast * self._mse_to_other_rows(ro.pred[ok]).cpu()
        return ro, rewards

    def _mse_to_other_rows(self, pred: torch.Tensor) -> torch.Tensor:
        """Each prediction's mean normalised MSE to `contrast_rows` random rl rows' vectors
        (chosen by seed and step): the shuffled control as a reward term. The MSE reward alone
        pays for hedging towards the mean direction when unsure, which raises the shuffled
        control as much as the round trip; this term pays for being far from other rows."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step_no + 7_919)
        pick = torch.randint(len(self.rows), (self.cfg.contrast_rows,), generator=g).tolist()
        other = torch.from_numpy(self.rows.vectors[pick]).to(pred.device).float()
        return (normalize(pred)[:, None, :] - normalize(other)[None]).pow(2).sum(-1).mean(1)

    def ridge_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(head features, vectors) of every row the `ar_ridge` refit has: consolidated."""
        self.ridge_feats, self.ridge_vecs = (
            [torch.cat(self.ridge_feats)],
            [torch.cat(self.ridge_vecs)],
        )
        return self.ridge_feats[0], self.ridge_vecs[0]

    def refit_ar(self) -> dict[str, float]:
        """The closed-form AR update: its head becomes the ridge readout of every row so far."""
        feats, vectors = self.ridge_rows()
        train_fve = fit_head(linear_head(self.ar), feats, vectors, self.cfg.ar_ridge)
        return {"ridge_rows": float(len(feats)), "ridge_train_fve": train_fve}

    def row_seeds(self, step: int, rows: int) -> list[int]:
        """The sampling seed of each of a step's global batch rows: a function of (seed, step,
        row), so each row draws the same explanations on any rank and after a resume."""
        return [seed_of(self.seed, step, i) for i in range(rows)]

    def _global(self, value: torch.Tensor | float, count: float) -> float:
        """The mean over every rank of a per-rank mean over `count` units (tokens or rows)."""
        n = distributed.total(count)
        return distributed.total(float(value) * count) / n if n else 0.0

    def _share_weight(self, count: float) -> float:
        """The factor on this rank's mean loss over `count` units that makes DDP's average of
        gradients over ranks equal the gradient of the mean over every rank's units (the
        single-process loss on the same global batch); 1 on one process."""
        world = distributed.world_size()
        if world == 1:
            return 1.0
        n = distributed.total(count)
        return count * world / n if n else 0.0

    def training_step(self, batch, batch_idx):
        """One GRPO step: rollouts, the policy update, the AR update, the non-finite accounting
        and the step's metrics. With several ranks, each takes its contiguous share of the
        step's rows with all their G samples (a group never spans ranks), losses are weighted
        so the averaged gradients are those of the whole batch, and every skip decision is
        taken on all ranks or on none."""
        cfg = self.cfg
        opt_av, opt_ar = self.optimizers()
        sched_av, sched_ar = self.lr_schedulers()
        step = self.step_no
        idx = batch_indices(len(self.rows), cfg.batch_size, self.seed, step)
        mine = distributed.share(len(idx))
        seeds = self.row_seeds(step, len(idx))[mine]
        idx = idx[mine]
        vectors = torch.from_numpy(self.rows.vectors[idx]).to(self.device)
        prefixes = [self.rows.prefixes[i] for i in idx]

        ro, rewards = self.rollout(vectors, prefixes, seeds)
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        finite = distributed.everywhere(bool(torch.isfinite(rewards).all()))
        stepped_av = False
        if finite:
            stepped_av, finite = self._policy_update(ro, rewards, opt_av, metrics)
        stepped_ar = False
        if finite and cfg.train_ar and distributed.total(len(ro.closed)) > 0:
            stepped_ar = self._ar_update(ro, opt_ar, metrics)
            finite = stepped_ar
        t_train = time.perf_counter() - t0

        self.step_no += 1
        if cfg.ar_ridge is not None and self.step_no % cfg.ar_refit_every == 0:
            metrics.update(self.refit_ar())
        if stepped_av:  # a schedule advances only after its update
            sched_av.step()
        if stepped_ar:
            sched_ar.step()
        self._count_nonfinite(finite, step)
        metrics.update(self._batch_metrics(ro, rewards))
        metrics.update(
            {
                "time/generate_s": ro.seconds["generate"],
                "time/score_s": ro.seconds["score"],
                "time/train_s": t_train,
                "skipped_steps": float(self.skipped),
                "kl_coef": cfg.kl_coef,
            }
        )
        self._log_step(metrics, step)

    def _policy_update(
        self, ro: Rollouts, rewards: torch.Tensor, opt_av, metrics: dict[str, float]
    ) -> tuple[bool, bool]:
        """The AV's clipped policy-gradient steps (`inner_epochs` of them) with the KL penalty
        to the frozen reference. Returns (whether it stepped, whether every loss was finite on
        every rank): the first non-finite loss ends the update."""
        cfg = self.cfg
        adv = group_advantages(rewards, cfg.group_size).to(self.device)
        responses = [t if t else [self.av.eos_id] for t in ro.tokens]
        vec_rep = ro.targets.to(self.device)
        with torch.no_grad():
            logp_ref, mask = self.reference.response_logprobs(vec_rep, responses)
            logp_old = None
            if cfg.inner_epochs > 1:
                logp_old, _ = self.av.response_logprobs(vec_rep, responses)
        av_params = [p for p in self.av.parameters() if p.requires_grad]
        tokens = float(mask.sum())
        weight = self._share_weight(tokens)
        stepped = False
        for _ in range(cfg.inner_epochs):
            logp, _ = self.av.response_logprobs(vec_rep, responses)
            old = logp.detach() if logp_old is None else logp_old
            pg, clip_frac = clipped_policy_loss(logp, old, adv, mask, cfg.clip_eps)
            kl = kl_penalty(logp, logp_ref, mask)
            loss = pg + cfg.kl_coef * kl
            if not distributed.everywhere(bool(torch.isfinite(loss))):
                return stepped, False
            opt_av.zero_grad(set_to_none=True)
            self.manual_backward(loss * weight if weight != 1.0 else loss)
            metrics["grad_norm/av"] = _grad_norm(av_params, cfg.grad_clip)
            metrics["lr/av"] = opt_av.optimizer.param_groups[0]["lr"]
            opt_av.step()
            stepped = True
            metrics.update(
                {
                    "loss/policy": self._global(pg.item(), tokens),
                    "kl": self._global(kl.item(), tokens),
                    "clip_frac": self._global(clip_frac.item(), tokens),
                }
            )
        return stepped, True

    def _ar_update(self, ro: Rollouts, opt_ar, metrics: dict[str, float]) -> bool:
        """One AdamW step of the AR on the closed rollouts; False where its loss is not finite
        on some rank."""
        keep = ro.closed
        ar_loss = self._ar_loss(ro, keep, ro.targets.to(self.device))
        if not distributed.everywhere(bool(torch.isfinite(ar_loss))):
            return False
        opt_ar.zero_grad(set_to_none=True)
        self.manual_backward(ar_loss * self._share_weight(len(keep)))
        metrics["grad_norm/ar"] = _grad_norm(list(self.ar.parameters()), self.cfg.grad_clip)
        metrics["lr/ar"] = opt_ar.optimizer.param_groups[0]["lr"]
        opt_ar.step()
        metrics["loss/ar"] = self._global(ar_loss.item(), len(keep))
        return True

    def _count_nonfinite(self, finite: bool, step: int) -> None:
        """A skipped step is counted; `max_nonfinite` of them in a row stop the run."""
        if finite:
            self.nonfinite_in_a_row = 0
            return
        self.skipped += 1
        self.nonfinite_in_a_row += 1
        log.warning("RL step %d skipped: non-finite loss or reward", step)
        if self.nonfinite_in_a_row >= self.cfg.max_nonfinite:
            raise NonFiniteError(
                f"{self.nonfinite_in_a_row} consecutive RL steps had a non-finite loss or "
                f"reward (last at step {step}); lower rl.av_lr / rl.ar_lr or check the data"
            )

    def _log_step(self, metrics: dict[str, float], step: int) -> None:
        if distributed.world_size() > 1:
            metrics = _mean_over_ranks(metrics)
        # straight to the loggers (rank 0's), at the RL step: `self.log` would re-log every key
        # of earlier steps with its stale value (one epoch holds all RL steps), so a step
        # where the AR did not train would still show its last loss
        for logger in self.loggers:
            logger.log_metrics({f"rl/{k}": v for k, v in metrics.items()}, step=step)
        self.history.append({"step": float(self.step_no), **metrics})

    def _batch_metrics(self, ro: Rollouts, rewards: torch.Tensor) -> dict[str, float]:
        """The rollouts' figures over the whole batch (every rank's rollouts gathered)."""
        every = distributed.gather_rows
        per = every(
            torch.stack(
                [
                    rewards.float(),
                    ro.mse,
                    baseline_mse(ro.targets, self.train_mean.cpu()),
                    (~ro.ok).float(),
                    torch.tensor(ro.cut, dtype=torch.float),
                    torch.tensor([len(t) for t in ro.tokens], dtype=torch.float),
                ],
                1,
            )
        )
        quotes = every(torch.tensor(ro.quote_rates(), dtype=torch.float))
        return {
            "reward/mean": float(per[:, 0].mean()),
            "reward/std": float(per[:, 0].std()),
            "batch_fve": fve(per[:, 1], per[:, 2]),
            "tag_failure_rate": float(per[:, 3].mean()),
            "cut_rate": float(per[:, 4].mean()),
            "response_tokens": float(per[:, 5].mean()),
            "quote_rate": float(quotes.mean()) if len(quotes) else 0.0,
        }

    def _ar_loss(self, ro: Rollouts, keep: list[int], vectors: torch.Tensor) -> torch.Tensor:
        """The AR's SGD loss on this rank's closed rollouts; with none here (but some on another
        rank), a zero that still reaches every AR parameter, so the ranks' gradients reduce."""
        if not keep:
            return sum(p.sum() for p in self.ar.parameters() if p.requires_grad) * 0.0
        srcs = [ro.sources[i] for i in keep]
        return self.ar.loss([ro.explanations[i] for i in keep], vectors[keep], srcs)


# -- checkpoints --------------------------------------------------------------------------------


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    scalars = {
        "numpy": [np_state[0], np_state[1].tolist(), *map(_py, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, scalars


def _py(x):
    return x.item() if hasattr(x, "item") else x


def _set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    n = scalars["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    p = scalars["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def rng_file(rank: int) -> str:
    """Each rank's RNG states travel in their own file (rank 0's keeps the one-process name)."""
    return RNG if rank == 0 else f"rng.rank{rank}.safetensors"


def save_rl_checkpoint(
    directory: Path,
    module: RLModule,
    ctx: BuildContext,
    reference_dir: Path,
    leader: bool = True,
) -> None:
    """AV and AR with their optimisers, the step, counters and every RNG state. With several
    ranks the leader writes the weights and states (the same on every rank) and each rank its
    own RNG states; all return once the checkpoint is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors, scalars = _rng_state()
    rank = distributed.rank() if distributed.initialized() else 0
    with atomic_path(directory / rng_file(rank)) as tmp:  # atomic; a full disk names the file
        save_file(tensors, tmp)
    if rank:
        write_yaml_atomic(directory / f"rng.rank{rank}.yaml", scalars)
    feats_vectors = module.ridge_rows() if module.cfg.ar_ridge is not None else None
    if not leader:
        distributed.barrier()
        return
    parts = zip(
        ("av", "ar"),
        (module.av, module.ar),
        module.optimizers(),
        module.lr_schedulers(),
        strict=True,
    )
    for kind, component, opt, sched in parts:
        save_checkpoint(
            directory / kind,
            component,
            kind,
            ctx,
            step=module.step_no,
            optimizer=getattr(opt, "optimizer", opt),
            scheduler=sched,
        )
    if feats_vectors is not None:  # the refit's rows: a resumed run refits on the same
        feats, vectors = feats_vectors
        with atomic_path(directory / RIDGE) as tmp:
            save_file({"features": feats.contiguous(), "vectors": vectors.contiguous()}, tmp)
    state = {
        "step": module.step_no,
        "skipped": module.skipped,
        "nonfinite_in_a_row": module.nonfinite_in_a_row,
        "reference": str(Path(reference_dir).resolve()),
        "world_size": distributed.world_size(),
        "rng": scalars,
    }
    write_yaml_atomic(directory / STATE, state)
    distributed.barrier()


def save_rl_weights(directory: Path, module: RLModule, ctx: BuildContext) -> None:
    """The AV's and AR's trained weights after RL, without optimisers, RNG or step state: the NLA
    a sweep's evaluation scored, kept for `nla explain` and `nla export` (not resumable)."""
    for kind, component in (("av", module.av), ("ar", module.ar)):
        save_checkpoint(directory / kind, component, kind, ctx, step=module.step_no)


def load_rl_checkpoint(directory: Path, ctx: BuildContext) -> tuple[nn.Module, nn.Module, dict]:
    """(av, ar, state) from an RL checkpoint; the RNG states are applied by `restore_rng`."""
    state = yaml.safe_load((Path(directory) / STATE).read_text())
    av, _ = load_component(Path(directory) / "av", ctx)
    ar, _ = load_component(Path(directory) / "ar", ctx)
    return av, ar, state


def restore_rng(directory: Path, state: dict) -> None:
    """This rank's RNG states (rank 0's where the checkpoint had fewer ranks: RL itself draws
    nothing from them, its samples and batches are functions of the seed and step)."""
    rank = distributed.rank() if distributed.initialized() else 0
    mine = Path(directory) / rng_file(rank)
    if rank and mine.is_file():
        scalars = yaml.safe_load((Path(directory) / f"rng.rank{rank}.yaml").read_text())
        _set_rng_state(load_file(mine), scalars)
    else:
        _set_rng_state(load_file(Path(directory) / RNG), state["rng"])


class RLCheckpoint(L.Callback):
    """Resumable RL checkpoints every N steps (and optimiser states restored on resume)."""

    def __init__(
        self,
        every: int,
        directory: Path,
        ctx: BuildContext,
        reference_dir: Path,
        resume_from: Path | None = None,
        leader: bool = True,
    ) -> None:
        self.every, self.directory, self.ctx = every, directory, ctx
        self.reference_dir, self.resume_from, self.leader = reference_dir, resume_from, leader

    def on_train_start(self, trainer, module) -> None:
        if self.resume_from is not None:
            parts = zip(module.optimizers(), module.lr_schedulers(), ("av", "ar"), strict=True)
            for opt, sched, kind in parts:
                load_optimizer_state(Path(self.resume_from) / kind, getattr(opt, "optimizer", opt))
                # the schedule's position (updates done so far), not the RL step
                saved = read_sidecar(Path(self.resume_from) / kind).scheduler
                sched.load_state_dict({**saved, "lr_lambdas": [None]})
            state = yaml.safe_load((Path(self.resume_from) / STATE).read_text())
            restore_rng(Path(self.resume_from), state)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and module.step_no % self.every == 0:
            save_rl_checkpoint(self.directory, module, self.ctx, self.reference_dir, self.leader)


def steps_loader(start: int, total: int) -> torch.utils.data.DataLoader:
    """One item per remaining RL step (the module draws its own batch from the step number)."""
    return torch.utils.data.DataLoader(list(range(start, total)), batch_size=None)


def load_ridge_rows(directory: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The `ar_ridge` refit's rows saved in an RL checkpoint (None when it has none)."""
    path = Path(directory) / RIDGE
    if not path.is_file():
        return None
    saved = load_file(path)
    return saved["features"], saved["vectors"]


# -- the stage's driver ----------------------------------------------------------------------

# What RL reports (`metric_names` lists them before a trial runs).
RL_FIGURES = (
    "steps",
    "wall_s",
    "skipped_steps",
    "step_generate_s",
    "step_score_s",
    "step_train_s",
)
RL_STEP_PARTS = ("generate", "score", "train")  # RL_FIGURES' step_PART_s

EVAL_CURVE = (
    "roundtrip_fve",
    "roundtrip_shuffled_fve",
    "roundtrip_gap",
    "tag_failure_rate",
    "schema_violation_rate",
    "ar_empty_fve",
    "prompt_fve",
    "beats_prompt",
    "beats_prompt_low",
    "beats_prompt_high",
    "av_nll_gap",
    "quote_rate",
    "length_mean",
)


def _rl_ridge_rows(t: Trial, av, ar, resume: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where RL's closed-form AR refit starts: a resumed run's rows, else the fixed AR's
    features of `ar_ridge_rows` teacher rows."""
    saved = load_ridge_rows(resume) if resume is not None else None
    if saved is not None:
        return saved
    rl = t.cfg.train.rl
    texts, vectors, sources = t.teacher_rows(rl.ar_ridge_rows, av.render_target)
    bar = "RL: AR features of teacher rows" if t.bars else None
    feats = head_features(ar, texts, sources, t.cfg.eval.batch_size, t.autocast, bar)
    return feats, torch.from_numpy(vectors.copy())


def run_rl(t: Trial, av, ar) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, float]]:
    """GRPO on the warm-started AV with the AR trained online (skipped when rl.steps is 0)."""
    rl = t.cfg.train.rl
    start = 0
    resume = Path(rl.resume_from) if rl.resume_from else None
    if resume is not None:
        av, ar, state = load_rl_checkpoint(resume, t.ctx)
        start = int(state["step"])
        reference_dir = Path(state["reference"])
        reference, _ = load_component(reference_dir, t.ctx)
    else:  # the warm AV as it is saved there, without reading it back (every rank holds it)
        reference_dir = t.checkpoints.get("av_checkpoint", t.run_dir / "av_checkpoint")
        reference = rebuilt(av, "av", t.ctx)
    av.to(t.device).train()
    ar.to(t.device).train()
    reference.to(t.device).requires_grad_(False)
    hold_frozen_weights(reference, t.ctx.frozen_dtype)  # built trainable, so not cast then
    for component in (av, ar, reference):
        train_attention(component, t.device)
    if t.cfg.train.gradient_checkpointing:  # cache hits and resumes too; idempotent
        enable_gradient_checkpointing(av)
        enable_gradient_checkpointing(ar)
    rows = load_split(t.dataset, "rl")

    def on_eval(step: int) -> dict[str, float]:
        av.eval()
        ar.eval()
        scores, *_ = t.evaluate(av, ar, t.cfg.train.rl.eval_samples)
        av.train()
        ar.train()
        picked = {k: scores[k] for k in EVAL_CURVE if k in scores}
        stop = None
        if t.leader:
            mlflow.log_metrics({f"rl/eval/{k}": v for k, v in picked.items()}, step=step)
            try:
                if t.reporter is not None:
                    t.reporter(step, picked)
            except TrialStopped as e:
                stop = e
        if distributed.broadcast(stop is not None):  # a pruned trial stops on every rank
            raise stop or TrialStopped(f"pruned at RL step {step} (by rank 0)")
        return picked

    ridge_rows = _rl_ridge_rows(t, av, ar, resume) if rl.ar_ridge is not None else None
    module = RLModule(av, ar, reference, rows, t.train_mean, rl, t.cfg.seed, start, ridge_rows)
    # the leader's: every rank writes its own RNG states there (a shared filesystem on nodes)
    ckpt_dir = Path(distributed.agree("rl_checkpoint", str(t.run_dir / "rl_checkpoint")))
    callbacks = [
        RLCheckpoint(rl.checkpoint_every, ckpt_dir, t.ctx, reference_dir, resume, t.leader),
        PeriodicEval(rl.eval_every, on_eval),
    ]
    figures: dict[str, float] = {"steps": float(start)}
    if rl.eval_every and rl.steps > start:  # the curve starts at the warm start (or resume point)
        first = on_eval(start)
        figures.update({f"eval_start/{k}": v for k, v in first.items()})
    if rl.steps > start:
        trainer = t.trainer("", -1, rl.max_minutes, callbacks)
        begin = time.perf_counter()
        trainer.fit(module, steps_loader(start, rl.steps))
        keep = t.cfg.train.save_checkpoints
        if keep is True or rl.checkpoint_every:
            save_rl_checkpoint(ckpt_dir, module, t.ctx, reference_dir, t.leader)
            t.checkpoints["rl_checkpoint"] = ckpt_dir
        elif keep == "weights":  # the NLA the evaluation scores, for explain and export
            if t.leader:
                save_rl_weights(ckpt_dir, module, t.ctx)
            t.checkpoints["rl_checkpoint"] = ckpt_dir
        hist = module.history
        parts = [float(np.mean([h[f"time/{p}_s"] for h in hist])) for p in RL_STEP_PARTS]
        steps, wall = float(module.step_no), time.perf_counter() - begin
        figures = dict(zip(RL_FIGURES, (steps, wall, float(module.skipped), *parts), strict=True))
    av.eval()
    ar.eval()
    return av, ar, {f"rl/{k}": v for k, v in figures.items()}
