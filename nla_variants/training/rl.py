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
import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from nla_variants.checkpoint import (
    load_component,
    load_optimizer_state,
    read_sidecar,
    save_checkpoint,
)
from nla_variants.config import RLConfig
from nla_variants.core.grpo import clipped_policy_loss, group_advantages, kl_penalty
from nla_variants.core.text import quote_rate
from nla_variants.core.vectors import (
    ORTHOGONAL_MSE,
    baseline_mse,
    centered_cosine,
    fve,
    normalize,
    normalized_mse,
)
from nla_variants.io import atomic_path, write_yaml_atomic
from nla_variants.registry import BuildContext
from nla_variants.training.data import SplitRows
from nla_variants.training.readout import fit_head, head_inputs, linear_head

log = logging.getLogger(__name__)

STATE = "rl_state.yaml"
RNG = "rng.safetensors"
RIDGE = "ridge_rows.safetensors"
FAILED_COSINE = -1.0  # the centered_cosine reward of a failed sample: the worst it can be


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
        opt_av = torch.optim.AdamW(av_params, lr=cfg.av_lr, weight_decay=0.0)
        opt_ar = torch.optim.AdamW(self.ar.parameters(), lr=cfg.ar_lr, weight_decay=0.0)
        scheds = [
            torch.optim.lr_scheduler.LambdaLR(o, warmup_constant(cfg.warmup_steps))
            for o in (opt_av, opt_ar)
        ]
        return [opt_av, opt_ar], scheds

    # -- one GRPO step ----------------------------------------------------------------------------

    def rollout(self, vectors: torch.Tensor, prefixes: list[str] | None = None) -> dict:
        """Sample, extract and score B x G explanations; no gradients. `prefixes` (one per
        vector) reach the AR as the sources of its samples (a full-context AR reads them)."""
        cfg = self.cfg
        g = cfg.group_size
        t0 = time.perf_counter()
        texts, tokens = self.av.generate(
            vectors,
            max_new_tokens=cfg.max_response_tokens,
            temperature=cfg.temperature,
            num_samples=g,
        )
        t1 = time.perf_counter()
        explanations = [self.av.extract(t) for t in texts]  # None: unclosed tag or invalid
        ok = torch.tensor([e is not None for e in explanations], dtype=torch.bool)
        cut = [
            len(t) >= cfg.max_response_tokens and e is None
            for t, e in zip(tokens, explanations, strict=True)
        ]
        targets = vectors.repeat_interleave(g, 0)
        mse = torch.full((len(texts),), ORTHOGONAL_MSE)
        score = -mse if cfg.reward == "mse" else torch.full((len(texts),), FAILED_COSINE)
        others = torch.zeros(len(texts))
        if bool(ok.any()):
            idx = ok.nonzero().squeeze(1).tolist()
            refit = cfg.ar_ridge is not None
            with torch.no_grad(), head_inputs(self.ar) if refit else nullcontext([]) as seen:
                srcs = None if prefixes is None else [prefixes[i // g] for i in idx]
                pred = self.ar([explanations[i] for i in idx], srcs).float()
            if refit:  # the fixed AR's features of these rollouts: rows of the next refit
                self.ridge_feats.append(torch.cat(seen))
                self.ridge_vecs.append(targets[ok].float().cpu())
            mse[ok] = normalized_mse(pred, targets[ok].float()).cpu()
            if cfg.reward == "mse":
                score[ok] = -mse[ok]
            else:
                score[ok] = centered_cosine(pred, targets[ok], self.train_mean).cpu()
            if cfg.contrast:
                others[ok] = self._mse_to_other_rows(pred).cpu()
        t2 = time.perf_counter()
        return {
            "texts": texts,
            "tokens": tokens,
            "explanations": explanations,
            "ok": ok,
            "cut": cut,
            "targets": targets,
            "rewards": score + cfg.contrast * others,
            "mse": mse,
            "t_generate": t1 - t0,
            "t_score": t2 - t1,
        }

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

    def training_step(self, batch, batch_idx):
        cfg = self.cfg
        opt_av, opt_ar = self.optimizers()
        sched_av, sched_ar = self.lr_schedulers()
        step = self.step_no
        idx = batch_indices(len(self.rows), cfg.batch_size, self.seed, step)
        vectors = torch.from_numpy(self.rows.vectors[idx]).to(self.device)
        prefixes = [self.rows.prefixes[i] for i in idx]

        ro = self.rollout(vectors, prefixes)
        t0 = time.perf_counter()
        rewards = ro["rewards"]
        adv = group_advantages(rewards, cfg.group_size).to(self.device)
        responses = [t if t else [self.av.eos_id] for t in ro["tokens"]]
        vec_rep = ro["targets"]
        with torch.no_grad():
            logp_ref, mask = self.reference.response_logprobs(vec_rep, responses)
            logp_old = None
            if cfg.inner_epochs > 1:
                logp_old, _ = self.av.response_logprobs(vec_rep, responses)

        metrics: dict[str, float] = {}
        stepped = {"av": False, "ar": False}  # a schedule advances only after its update
        finite = bool(torch.isfinite(rewards).all())
        av_params = [p for p in self.av.parameters() if p.requires_grad]
        for _ in range(cfg.inner_epochs):
            logp, _ = self.av.response_logprobs(vec_rep, responses)
            old = logp.detach() if logp_old is None else logp_old
            pg, clip_frac = clipped_policy_loss(logp, old, adv, mask, cfg.clip_eps)
            kl = kl_penalty(logp, logp_ref, mask)
            loss = pg + cfg.kl_coef * kl
            if not (finite and bool(torch.isfinite(loss))):
                finite = False
                break
            opt_av.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            metrics["grad_norm/av"] = _grad_norm(av_params, cfg.grad_clip)
            metrics["lr/av"] = opt_av.optimizer.param_groups[0]["lr"]
            opt_av.step()
            stepped["av"] = True
            metrics.update(
                {"loss/policy": pg.item(), "kl": kl.item(), "clip_frac": clip_frac.item()}
            )
        ok = ro["ok"]
        if finite and cfg.train_ar and bool(ok.any()):
            keep = ok.nonzero().squeeze(1).tolist()
            srcs = [prefixes[i // cfg.group_size] for i in keep]
            ar_loss = self.ar.loss([ro["explanations"][i] for i in keep], vec_rep[keep], srcs)
            if bool(torch.isfinite(ar_loss)):
                opt_ar.zero_grad(set_to_none=True)
                self.manual_backward(ar_loss)
                metrics["grad_norm/ar"] = _grad_norm(list(self.ar.parameters()), cfg.grad_clip)
                metrics["lr/ar"] = opt_ar.optimizer.param_groups[0]["lr"]
                opt_ar.step()
                stepped["ar"] = True
                metrics["loss/ar"] = ar_loss.item()
            else:
                finite = False
        t_train = time.perf_counter() - t0

        self.step_no += 1
        if cfg.ar_ridge is not None and self.step_no % cfg.ar_refit_every == 0:
            metrics.update(self.refit_ar())
        if stepped["av"]:
            sched_av.step()
        if stepped["ar"]:
            sched_ar.step()
        if not finite:
            self.skipped += 1
            self.nonfinite_in_a_row += 1
            log.warning("RL step %d skipped: non-finite loss or reward", step)
            if self.nonfinite_in_a_row >= cfg.max_nonfinite:
                raise NonFiniteError(
                    f"{self.nonfinite_in_a_row} consecutive RL steps had a non-finite loss or "
                    f"reward (last at step {step}); lower rl.av_lr / rl.ar_lr or check the data"
                )
        else:
            self.nonfinite_in_a_row = 0

        base = baseline_mse(ro["targets"].float().cpu(), self.train_mean.cpu())
        expl_ok = [e for e in ro["explanations"] if e is not None]
        srcs = [
            prefixes[i // cfg.group_size] for i, e in enumerate(ro["explanations"]) if e is not None
        ]
        lengths = [len(t) for t in ro["tokens"]]
        metrics.update(
            {
                "reward/mean": float(rewards.mean()),
                "reward/std": float(rewards.std()),
                "batch_fve": fve(ro["mse"], base),
                "tag_failure_rate": float((~ok).float().mean()),
                "cut_rate": float(np.mean(ro["cut"])),
                "response_tokens": float(np.mean(lengths)),
                "quote_rate": float(
                    np.mean([quote_rate(e, s) for e, s in zip(expl_ok, srcs, strict=True)])
                )
                if expl_ok
                else 0.0,
                "time/generate_s": ro["t_generate"],
                "time/score_s": ro["t_score"],
                "time/train_s": t_train,
                "skipped_steps": float(self.skipped),
                "kl_coef": cfg.kl_coef,
            }
        )
        self.log_dict(
            {f"rl/{k}": v for k, v in metrics.items()}, on_step=True, batch_size=cfg.batch_size
        )
        self.history.append({"step": float(self.step_no), **metrics})


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


def save_rl_checkpoint(
    directory: Path, module: RLModule, ctx: BuildContext, reference_dir: Path
) -> None:
    """AV and AR with their optimisers, the step, counters and every RNG state."""
    directory.mkdir(parents=True, exist_ok=True)
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
    tensors, scalars = _rng_state()
    with atomic_path(directory / RNG) as tmp:  # atomic, and a full disk names the file
        save_file(tensors, tmp)
    if module.cfg.ar_ridge is not None:  # the refit's rows: a resumed run refits on the same
        feats, vectors = module.ridge_rows()
        with atomic_path(directory / RIDGE) as tmp:
            save_file({"features": feats.contiguous(), "vectors": vectors.contiguous()}, tmp)
    state = {
        "step": module.step_no,
        "skipped": module.skipped,
        "nonfinite_in_a_row": module.nonfinite_in_a_row,
        "reference": str(Path(reference_dir).resolve()),
        "rng": scalars,
    }
    write_yaml_atomic(directory / STATE, state)


def load_rl_checkpoint(directory: Path, ctx: BuildContext) -> tuple[nn.Module, nn.Module, dict]:
    """(av, ar, state) from an RL checkpoint; the RNG states are applied by `restore_rng`."""
    state = yaml.safe_load((Path(directory) / STATE).read_text())
    av, _ = load_component(Path(directory) / "av", ctx)
    ar, _ = load_component(Path(directory) / "ar", ctx)
    return av, ar, state


def restore_rng(directory: Path, state: dict) -> None:
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
    ) -> None:
        self.every, self.directory, self.ctx = every, directory, ctx
        self.reference_dir, self.resume_from = reference_dir, resume_from

    def on_train_start(self, trainer, module) -> None:
        if self.resume_from is not None:
            parts = zip(module.optimizers(), module.lr_schedulers(), ("av", "ar"), strict=True)
            for opt, sched, kind in parts:
                load_optimizer_state(Path(self.resume_from) / kind, getattr(opt, "optimizer", opt))
                # the schedule's position (updates done so far), not the RL step
                saved = read_sidecar(Path(self.resume_from) / kind)["scheduler"]
                sched.load_state_dict({**saved, "lr_lambdas": [None]})
            state = yaml.safe_load((Path(self.resume_from) / STATE).read_text())
            restore_rng(Path(self.resume_from), state)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and module.step_no % self.every == 0:
            save_rl_checkpoint(self.directory, module, self.ctx, self.reference_dir)


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
