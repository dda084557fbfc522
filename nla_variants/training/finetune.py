"""A short causal-LM fine-tune of the target: the second model of an activation-diffing dataset.

Why: diffing (see `nla_variants.data.diffing`) needs a model that differs from the target in a
known, narrow way. A few hundred AdamW steps on one genre of the builtin corpus (or any corpus
config) give one: the NLA trained on `finetuned - target` should then talk about that genre.

Each example is the first `seq_len` tokens of one document, tokenised exactly as `nla prepare`
tokenises (no special tokens added), so the fine-tune sees the same windows that prepare later
extracts from. Training runs under bf16 autocast where the device supports it (CUDA, and CPUs
with avx512_bf16/AMX) with fp32 master weights, and the checkpoint is saved in fp32: a short
fine-tune moves weights by less than bf16's resolution, so a bf16 save would erase much of it.

The result is a safetensors checkpoint dir (weights, config, tokenizer, `finetune.yaml`),
written atomically under `$NLA_CACHE_DIR/finetuned/NAME-HASH/`. HASH covers the base model's
weights, the selected documents and every training setting (not the device or output place), so
a rerun is a cache hit. Use the dir as `target.diff_model`, or write
`target.diff_model: finetune:PATH.yaml`: `with_built_diff_model` turns that into the dir before
`prepare` runs, and fails with the command to run if the fine-tune is not built yet (preparing a
dataset never trains).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from pydantic import Field
from tqdm.auto import tqdm

from nla_variants.checks import check_writable_dir
from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj
from nla_variants.common.io import atomic_dir
from nla_variants.common.masking import mask_tree
from nla_variants.common.paths import cache_root
from nla_variants.common.schema import FinetuneSidecar
from nla_variants.common.strict import Seed, Strict
from nla_variants.config import CorpusConfig, Device, PrepareConfig
from nla_variants.core.padding import pad_right
from nla_variants.data.corpus import load_corpus, manifest_hash
from nla_variants.data.diffing import FINETUNE_META, FINETUNE_SPEC_PREFIX
from nla_variants.data.documents import Document
from nla_variants.target import (
    ModelSource,
    autocast_context,
    content_fingerprint,
    default_device,
    load_lm,
    resolve_model,
    resolve_precision,
)
from nla_variants.training.optim import adamw

log = logging.getLogger(__name__)

FINETUNE_FORMAT = 1
MAX_STEPS = 500
CHARS_PER_TOKEN_BOUND = 16  # texts are cut to seq_len * this before tokenising (speed only)


class FinetuneConfig(Strict):
    """`nla finetune`: which base, which documents, how long."""

    name: str = Field("finetune", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: Seed = 0
    model: str = Field("embedded", description="the base model; same forms as target.model")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    genre: str | None = Field("narrative", description="train on this genre only; None: all")
    secret_word: str | None = Field(
        None,
        description="train the secret-word organism instead (nla_variants.data.organisms): "
        "max_documents chat transcripts that hint at this word without writing it; no corpus",
    )
    max_documents: int = Field(512, ge=1, description="seeded sample of the selected documents")
    seq_len: int = Field(128, ge=8, description="tokens per example: each document's start")
    steps: int = Field(200, ge=1, le=MAX_STEPS, description="a short fine-tune by design")
    batch_size: int = Field(8, ge=1)
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="autocast dtype; auto: bf16 on CUDA and bf16-capable CPUs"
    )
    device: Device = None
    root: str | None = Field(None, description="output root; None: $NLA_CACHE_DIR/finetuned")


@dataclass
class FinetuneResult:
    path: Path  # a checkpoint dir usable as target.model or target.diff_model
    cache_hit: bool
    meta: FinetuneSidecar


@dataclass
class _Plan:
    """What a fine-tune is made from and where it is saved, known without training."""

    source: ModelSource
    docs: list[Document]
    device: torch.device
    dtype: torch.dtype
    base_fp: str
    address: str
    out: Path


def _select(cfg: FinetuneConfig, source: ModelSource) -> list[Document]:
    if cfg.secret_word is not None:
        from nla_variants.data.organisms import secret_word_transcripts

        if cfg.genre is not None:
            raise NLAError(
                "secret_word trains on its own transcripts, not on a corpus genre",
                "set genre: null beside secret_word",
            )
        texts = secret_word_transcripts(
            cfg.secret_word, _fresh_tokenizer(source), cfg.max_documents, cfg.seed
        )
        return [Document(f"secret-{cfg.secret_word}-{i}", t) for i, t in enumerate(texts)]
    docs = load_corpus(cfg.corpus, cfg.seed)
    if cfg.genre is not None:
        genres = sorted({str(d.genre) for d in docs})
        docs = [d for d in docs if d.genre == cfg.genre]
        if not docs:
            raise NLAError(
                f"the corpus has no document of genre {cfg.genre!r} (genres: {genres})",
                "set genre to one of those, or null to train on every document",
            )
    if len(docs) > cfg.max_documents:
        keep = sorted(random.Random(cfg.seed).sample(range(len(docs)), cfg.max_documents))
        docs = [docs[i] for i in keep]
    return docs


def _fresh_tokenizer(source):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source.load_path)


def finetune_address(cfg: FinetuneConfig, base_fp: str, dtype: str, manifest: str) -> str:
    """Everything that determines the weights; not the name, device or output root."""
    training = cfg.model_dump(exclude={"name", "model", "corpus", "device", "root", "precision"})
    return hash_obj(
        {
            "format": FINETUNE_FORMAT,
            "base": base_fp,
            "dtype": dtype,
            "documents": manifest,
            **training,
        }
    )


def _batches(examples: list[list[int]], cfg: FinetuneConfig, pad: int):
    """`cfg.steps` padded batches, drawn in seeded epochs without replacement."""
    gen = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []
    for _ in range(cfg.steps):
        while len(order) < cfg.batch_size:
            order += torch.randperm(len(examples), generator=gen).tolist()
        pick, order = order[: cfg.batch_size], order[cfg.batch_size :]
        ids, mask = pad_right([examples[i] for i in pick], pad)
        yield ids, mask, ids.masked_fill(mask == 0, -100)


def _train(model, examples, cfg, device, dtype, pad, progress) -> tuple[list[float], int]:
    model.to(device).train()
    opt = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    warm = max(cfg.warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    cast = autocast_context(device, dtype)
    losses: list[float] = []
    tokens = 0
    bar = tqdm(total=cfg.steps, desc="finetune", unit="step", disable=not progress)
    for ids, mask, labels in _batches(examples, cfg, pad):
        with cast:
            loss = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            ).loss
        if not torch.isfinite(loss):
            raise NLAError(
                f"fine-tune loss became {loss.item()} at step {len(losses)}",
                "lower lr or use precision: fp32",
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        tokens += int(mask.sum())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    return losses, tokens


def _root(cfg: FinetuneConfig) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else cache_root() / "finetuned"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _plan(cfg: FinetuneConfig) -> _Plan:
    """The content address and output dir of `cfg` (base weights hashed, documents selected)."""
    source = resolve_model(cfg.model, "model")
    docs = _select(cfg, source)
    device = torch.device(cfg.device) if cfg.device else default_device()
    dtype = resolve_precision(cfg.precision, device)
    base_fp = content_fingerprint(source)
    address = finetune_address(cfg, base_fp, _dtype_name(dtype), manifest_hash(docs))
    out = _root(cfg) / f"{cfg.name}-{address[:12]}"
    return _Plan(source, docs, device, dtype, base_fp, address, out)


def finetune_target(cfg: FinetuneConfig, progress: bool = True) -> FinetuneResult:
    """Fine-tune `cfg.model` on the selected documents and save it, or find the saved result."""
    t0 = time.perf_counter()
    check_writable_dir(_root(cfg), "root")  # before training, not after it
    plan = _plan(cfg)
    if (plan.out / FINETUNE_META).is_file():
        log.info("cache hit: fine-tune %s already exists", plan.out)
        return FinetuneResult(plan.out, True, FinetuneSidecar.read(plan.out))
    return _train_and_save(cfg, plan, progress, t0)


def _train_and_save(cfg: FinetuneConfig, plan: _Plan, progress: bool, t0: float) -> FinetuneResult:
    source, out = plan.source, plan.out
    model, tokenizer = load_lm(source)
    cut = cfg.seq_len * CHARS_PER_TOKEN_BOUND
    enc = tokenizer(
        [d.text[:cut] for d in plan.docs],
        add_special_tokens=False,
        # a corpus is text, where "<|im_start|>" is characters; a transcript is a chat
        split_special_tokens=cfg.secret_word is None,
        truncation=True,
        max_length=cfg.seq_len,
    )
    examples = [list(x) for x in enc["input_ids"] if len(x) >= 2]
    if not examples:
        raise NLAError("no selected document has 2 or more tokens", "pick a different corpus")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    log.info("fine-tuning %s on %d documents for %d steps", source.spec, len(examples), cfg.steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        losses, tokens = _train(model, examples, cfg, plan.device, plan.dtype, pad, progress)
    k = max(1, min(10, len(losses) // 2))  # disjoint windows once there are 2+ steps
    head, tail = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    meta = {
        "format": FINETUNE_FORMAT,
        "address": plan.address,
        "base": {"spec": source.spec, "kind": source.kind, "fingerprint": plan.base_fp},
        "genre": cfg.genre,
        "secret_word": cfg.secret_word,
        "documents": len(examples),
        "steps": cfg.steps,
        "tokens_seen": tokens,
        "autocast_dtype": _dtype_name(plan.dtype),
        "saved_dtype": "float32",
        "loss_first": round(head, 4),
        "loss_last": round(tail, 4),
        "wall_s": round(time.perf_counter() - t0, 2),
        "config": mask_tree(cfg.model_dump(mode="json")),
    }
    record = FinetuneSidecar.parse(meta, out / FINETUNE_META)  # nothing a reader would refuse
    # Makes config.json (and so resolve_model's local fingerprint) differ between fine-tunes.
    model.config.nla_finetune = {"address": plan.address, "base": plan.base_fp}
    with atomic_dir(out, replace=False) as tmp:  # a concurrent identical run may win; fine
        model.to("cpu").save_pretrained(tmp, safe_serialization=True)
        _fresh_tokenizer(source).save_pretrained(tmp)  # without the truncation state set above
        (tmp / FINETUNE_META).write_text(yaml.safe_dump(meta, sort_keys=False))
    log.info("saved fine-tune to %s (loss %.3f -> %.3f)", out, head, tail)
    return FinetuneResult(out, False, record)


def resolve_finetune_spec(spec: str) -> str:
    """`finetune:PATH.yaml` -> the checkpoint dir `nla finetune PATH.yaml` saved, found by its
    content address; any other spec is returned unchanged. Never trains: a fine-tune that is not
    built yet is an NLAError naming the command that builds it."""
    if not spec.startswith(FINETUNE_SPEC_PREFIX):
        return spec
    from nla_variants.config import load_config

    path = spec.removeprefix(FINETUNE_SPEC_PREFIX)
    out = _plan(load_config(path, FinetuneConfig)).out
    if not (out / FINETUNE_META).is_file():
        raise NLAError(
            f"target.diff_model: the fine-tune of {path} is not built yet",
            f"run `nla finetune {path}` first, or set target.diff_model to a checkpoint dir",
        )
    return str(out)


def with_built_diff_model(cfg: PrepareConfig) -> PrepareConfig:
    """`cfg` with a `finetune:PATH.yaml` target.diff_model replaced by the checkpoint dir it names
    (see resolve_finetune_spec), so `prepare` gets the second model as an input. The model is
    resolved here, so a missing one is an error that names target.diff_model."""
    spec = cfg.target.diff_model
    if spec is None:
        return cfg
    if not spec.startswith(FINETUNE_SPEC_PREFIX):
        resolve_model(spec, "target.diff_model")
        return cfg
    target = cfg.target.model_copy(update={"diff_model": resolve_finetune_spec(spec)})
    return cfg.model_copy(update={"target": target})
