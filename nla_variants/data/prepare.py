"""`nla prepare`: corpus + target model -> a versioned, resumable activation dataset.

Stages: validate everything that can fail (config, model dims, corpus files, teacher key) before
writing anything; compute the content address; then per shard of documents: one early-exit
forward per document (all its truncation points at once), teacher explanations, an atomic parquet
write. A killed run resumes at the first missing shard and ends with exactly the rows of an
uninterrupted run; the sidecar is written last and marks completion. With `target.diff_model` the
vectors are that model's activations minus the target's (one pass per model per document; see
nla_variants/data/diffing.py). That second model is an input: `prepare` never trains, and a
`finetune:PATH.yaml` spec is turned into the built checkpoint dir before it is called
(`nla_variants.training.finetune.with_built_diff_model`).

A teacher's failure is never stored as its answer: a shard is written only when the teacher
answered every row it was asked about (an answer it rejected as malformed or truncated counts as
answered and dropped), and a dataset whose teacher explained none of its rows is not marked
complete. Either stops `prepare` in one line; the shards already written (and a caching
teacher's answers) are kept, so rerunning once the teacher works continues from there.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nla_variants.checks import check_writable_dir
from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj
from nla_variants.common.io import write_yaml_atomic
from nla_variants.common.masking import mask_tree
from nla_variants.common.paths import cache_root
from nla_variants.common.schema import DatasetSidecar
from nla_variants.config import PrepareConfig
from nla_variants.data.corpus import corpus_sources, load_corpus, manifest_hash
from nla_variants.data.diffing import diff_sidecar, load_extractor, resolve_diff_model
from nla_variants.data.properties import (
    PROPERTIES_VERSION,
    STORED,
    finetune_genre,
    property_columns,
)
from nla_variants.data.sampling import DocPlan, plan_documents
from nla_variants.data.store import (
    CONFIG,
    FORMAT_VERSION,
    SIDECAR,
    StoredDataset,
    has_properties,
    shard_name,
    shard_rows,
    vector_matrix,
    write_shard,
)
from nla_variants.data.teachers.base import Teacher
from nla_variants.data.teachers.factory import make_teacher
from nla_variants.data.teachers.predictions import prediction_line
from nla_variants.target import (
    LAYER_CONVENTION,
    TargetModel,
    check_layer,
    default_device,
    resolve_model,
    resolve_precision,
    source_adds_bos,
    tokenizer_adds_bos,
)

log = logging.getLogger(__name__)

CHARS_PER_TOKEN_BOUND = 16  # texts are cut to max_tokens * this before tokenising (speed only)


@dataclass
class PrepareResult:
    path: Path
    cache_hit: bool
    sidecar: dict  # as written

    @property
    def meta(self) -> DatasetSidecar:
        return DatasetSidecar.parse(self.sidecar, self.path / SIDECAR)


def dataset_address(
    cfg: PrepareConfig,
    model_fp: str,
    dtype: str,
    manifest: str,
    teacher_fp: dict,
    diff_fp: str | None = None,
    add_bos: bool = False,
) -> str:
    """Hash of everything that determines the rows; nothing that only changes speed or place.
    A diff dataset adds the second model's fingerprint (ordinary addresses are unchanged)."""
    return hash_obj(
        {
            **({"diff_model": diff_fp} if diff_fp else {}),
            "format": FORMAT_VERSION,
            "seed": cfg.seed,
            "model": model_fp,
            "layer": cfg.target.layer,
            "dtype": dtype,
            "corpus": manifest,
            "sampling": cfg.sampling.model_dump(),
            "teacher": teacher_fp,
            # only when set, so the addresses of datasets without it do not move
            **({"next_tokens": cfg.teacher.next_tokens} if cfg.teacher.next_tokens else {}),
            **({"add_bos": True} if add_bos else {}),
            "teacher_splits": sorted(cfg.teacher.splits),
            "shard_docs": cfg.store.shard_docs,
        }
    )


@contextlib.contextmanager
def _exclusive(directory: Path, wait: bool = False) -> Iterator[None]:
    """One writer per dataset directory. A second `nla prepare` on it fails fast; with `wait`
    (trials of concurrent sweep workers) it blocks until the first writer is done."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait:
                log.info("waiting for another writer of %s", directory)
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield
                return
            raise NLAError(
                f"another `nla prepare` is writing {directory}", "wait for it to finish"
            ) from None
        yield


def _norm_stats(norms: np.ndarray) -> dict:
    if len(norms) == 0:
        return {"count": 0}
    q = np.percentile(norms, [5, 50, 95])
    return {
        "count": int(len(norms)),
        "mean": float(norms.mean()),
        "std": float(norms.std()),
        "min": float(norms.min()),
        "p05": float(q[0]),
        "p50": float(q[1]),
        "p95": float(q[2]),
        "max": float(norms.max()),
    }


def _shard_plans(plans: list[DocPlan], shard_docs: int) -> list[list[DocPlan]]:
    return [plans[i : i + shard_docs] for i in range(0, len(plans), shard_docs)]


def _build_shard(
    target: TargetModel,
    plans: list[DocPlan],
    token_ids: dict[str, list[int]],
    cfg: PrepareConfig,
    teacher,
    bar: tqdm,
    tuned_genre: str | None = None,
) -> tuple[dict, np.ndarray]:
    ids = [token_ids[p.doc.doc_id] for p in plans]
    # the model reads BOS first where its tokenizer prepends one (the rows' text never has it)
    bos = [target.tokenizer.bos_token_id] if tokenizer_adds_bos(target.tokenizer) else []
    read = [bos + seq for seq in ids]
    positions = [[len(bos) + n - 1 for n in p.prefix_lengths] for p in plans]
    layer, budget, top_k = cfg.target.layer, cfg.target.max_batch_tokens, cfg.teacher.next_tokens
    if top_k:  # the same forward, run to the logits
        vectors, predicted = target.residuals_and_predictions(
            read, layer, positions, top_k, budget, on_batch=bar.update
        )
    else:
        vectors = target.residuals(read, layer, positions, budget, on_batch=bar.update)
    rows: dict[str, list] = {
        k: []
        for k in (
            "example_id",
            "doc_id",
            "genre",
            "split",
            "token_position",
            "next_token_id",
            "prefix",
            "explanation",
        )
    }
    for plan, seq in zip(plans, ids, strict=True):
        for n in plan.prefix_lengths:
            rows["example_id"].append(f"{plan.doc.doc_id}@{n}")
            rows["doc_id"].append(plan.doc.doc_id)
            rows["genre"].append(plan.doc.genre)
            rows["split"].append(plan.split)
            rows["token_position"].append(n)
            rows["next_token_id"].append(seq[n] if n < len(seq) else -1)
            rows["prefix"].append(target.tokenizer.decode(seq[:n]))
            rows["explanation"].append(None)
    decode = target.tokenizer.decode
    rows.update(
        property_columns(
            rows["prefix"],
            rows["genre"],
            [decode([s[n - 1]]) for p, s in zip(plans, ids, strict=True) for n in p.prefix_lengths],
            [decode([i]) if i >= 0 else None for i in rows["next_token_id"]],
            tuned_genre,
        )
    )
    wanted = [i for i, s in enumerate(rows["split"]) if s in cfg.teacher.splits]
    if wanted:
        answers = teacher.explain([rows["prefix"][i] for i in wanted])
        if teacher.unanswered:
            raise _unanswered(teacher, len(wanted))
        for i, answer in zip(wanted, answers, strict=True):
            rows["explanation"][i] = answer
    if top_k:  # the teacher's text stays the prompt; the explanation adds the model's guess
        rows["prompt"] = list(rows["explanation"])
        guesses = np.concatenate(predicted)
        for i, answer in enumerate(rows["prompt"]):
            if answer is not None:
                line = prediction_line([decode([t]) for t in guesses[i].tolist()])
                rows["explanation"][i] = f"{answer}\n{line}"
    return rows, np.concatenate(vectors)


def _unanswered(teacher: Teacher, asked: int) -> NLAError:
    """Rows the teacher got no answer for: the shard is not written (a None there would read as
    the teacher's verdict forever, and a rerun would be a cache hit)."""
    reason = teacher.last_error or "no reason given"
    return NLAError(
        f"teacher '{teacher.name}' got no answer for {teacher.unanswered} of {asked} rows of a "
        f"shard ({reason}); the dataset is not complete",
        f"check the teacher's settings (teacher.{teacher.name}, e.g. its base_url) and the "
        "network, then rerun the same command: finished shards and received answers are kept",
    )


def _check_explained(teacher: Teacher, summary: dict) -> None:
    """A dataset whose teacher explained none of its rows warm-starts nothing: not complete."""
    if summary["teacher_rows"] == 0 or summary["explained"] > 0:
        return
    why = ", ".join(f"{k}: {v}" for k, v in sorted(teacher.stats.extra.items()))
    raise NLAError(
        f"teacher '{teacher.name}' explained none of the {summary['teacher_rows']} rows it was "
        f"asked about{f' ({why})' if why else ''}; the dataset is not complete",
        f"fix the teacher's settings (teacher.{teacher.name}, e.g. its model or max_tokens; that "
        "makes a new dataset) or set teacher.kind: heuristic",
    )


def _summarise(directory: Path, shards: list[str], teacher_splits: list[str]) -> dict:
    """Counts and activation norm statistics, read back from the finished shards (so a resumed
    run reports the same numbers as an uninterrupted one)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["split", "genre", "doc_id", "explanation", "vector"]
    t = pa.concat_tables([pq.read_table(directory / n, columns=cols) for n in shards])
    norms = np.linalg.norm(vector_matrix(t).astype(np.float64), axis=1)
    split = np.array(t.column("split").to_pylist())
    doc = np.array(t.column("doc_id").to_pylist())
    has_expl = np.array([e is not None for e in t.column("explanation").to_pylist()], dtype=bool)
    per_split = {}
    for s in sorted(set(split.tolist())):
        m = split == s
        per_split[s] = {
            "rows": int(m.sum()),
            "documents": len(set(doc[m].tolist())),
            "explained": int(has_expl[m].sum()),
        }
    teacher_mask = np.isin(split, teacher_splits)
    return {
        "rows": len(split),
        "splits": per_split,
        "genres": dict(sorted(Counter(map(str, t.column("genre").to_pylist())).items())),
        "teacher_rows": int(teacher_mask.sum()),
        "explained": int(has_expl[teacher_mask].sum()),
        "dropped": int((teacher_mask & ~has_expl).sum()),
        "norms": {
            "all": _norm_stats(norms),
            **{s: _norm_stats(norms[split == s]) for s in per_split},
        },
    }


def prepare(cfg: PrepareConfig, progress: bool = True, wait: bool = False) -> PrepareResult:
    """Build (or find) the dataset for `cfg`. Raises NLAError before writing on any bad input.
    `wait`: if another process is building the same dataset, wait for it instead of failing."""
    t0 = time.perf_counter()
    check_writable_dir(cfg.store.root, "store.root")
    source = resolve_model(cfg.target.model)
    check_layer(cfg.target.layer, source.num_layers, source.spec)
    diff = resolve_diff_model(cfg.target, source)
    teacher = make_teacher(cfg.teacher, cfg.seed, cache_root() / "teachers")
    docs = load_corpus(cfg.corpus, cfg.seed)
    manifest = manifest_hash(docs)
    device = torch.device(cfg.target.device) if cfg.target.device else default_device()
    dtype = str(resolve_precision(cfg.target.precision, device)).removeprefix("torch.")
    add_bos = source_adds_bos(source)  # refuses a Gemma whose tokenizer adds no BOS
    address = dataset_address(
        cfg,
        source.fingerprint,
        dtype,
        manifest,
        teacher.fingerprint(),
        diff and diff.fingerprint,
        add_bos,
    )
    directory = Path(cfg.store.root) / f"{cfg.name}-{address[:12]}"
    if (directory / SIDECAR).is_file():
        log.info("cache hit: %s is complete (same config, model, corpus and teacher)", directory)
        teacher.close()
        return PrepareResult(directory, True, StoredDataset.open(directory).sidecar)
    try:
        teacher.check()  # e.g. one cheap API request: a rejected key fails before extraction
        target = load_extractor(cfg.target, diff, source)  # may refuse (identical weights)
        with _exclusive(directory, wait):
            if (directory / SIDECAR).is_file():  # the writer we waited for finished it
                return PrepareResult(directory, True, StoredDataset.open(directory).sidecar)
            for stale in directory.glob(".*.tmp"):  # left by a killed run
                stale.unlink()
            write_yaml_atomic(directory / CONFIG, mask_tree(cfg.model_dump(mode="json")))
            sidecar = _build(
                cfg, directory, source, target, diff, teacher, docs, manifest, address, progress
            )
            sidecar["timings"] = {"total_s": round(time.perf_counter() - t0, 2)}
            DatasetSidecar.parse(sidecar, directory / SIDECAR)  # nothing a reader would refuse
            write_yaml_atomic(directory / SIDECAR, sidecar)  # inside the lock: waiters see it
    finally:
        teacher.close()
    return PrepareResult(directory, False, sidecar)


def _build(
    cfg, directory, source, target, diff, teacher, docs, manifest, address, progress
) -> dict:
    budget = cfg.sampling.max_tokens + 1  # one more token tells what follows the longest prefix
    cut = budget * CHARS_PER_TOKEN_BOUND
    ids_list = target.tokenize([d.text[:cut] for d in docs], max_tokens=budget)
    token_ids = {d.doc_id: ids for d, ids in zip(docs, ids_list, strict=True)}
    plans = plan_documents(
        docs,
        [len(x) for x in ids_list],
        positions_per_doc=cfg.sampling.positions_per_doc,
        min_prefix=cfg.sampling.min_prefix,
        max_tokens=cfg.sampling.max_tokens,
        fractions=cfg.sampling.splits,
        seed=cfg.seed,
    )
    groups = _shard_plans(plans, cfg.store.shard_docs)
    names = [shard_name(i) for i in range(len(groups))]
    todo = [
        i
        for i, g in enumerate(groups)
        if shard_rows(directory / names[i]) != sum(len(p.prefix_lengths) for p in g)
    ]
    if len(todo) < len(groups):
        log.info("resuming: %d of %d shards already written", len(groups) - len(todo), len(groups))
    total_tokens = sum(max(p.prefix_lengths) for i in todo for p in groups[i])
    t_extract = time.perf_counter()
    tuned = finetune_genre(diff.load_path) if diff is not None else None
    with tqdm(total=total_tokens, unit="tok", desc="extract+teach", disable=not progress) as bar:
        for i in todo:
            rows, vectors = _build_shard(target, groups[i], token_ids, cfg, teacher, bar, tuned)
            write_shard(directory / names[i], rows, vectors)
    elapsed = time.perf_counter() - t_extract
    summary = _summarise(directory, names, cfg.teacher.splits)
    _check_explained(teacher, summary)
    return {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "address": address,
        "model": {
            "spec": source.spec,
            "kind": source.kind,
            "fingerprint": source.fingerprint,
            "num_layers": source.num_layers,
            "d_model": source.d_model,
        },
        **diff_sidecar(diff),
        "layer": cfg.target.layer,
        "layer_convention": LAYER_CONVENTION,
        "d_model": source.d_model,
        "dtype": str(target.dtype).removeprefix("torch."),
        "tokenizer_hash": target.tokenizer_hash(),
        "tokenization": {"add_bos": tokenizer_adds_bos(target.tokenizer)},
        "seed": cfg.seed,
        "corpus": {
            "source": cfg.corpus.source,
            "manifest_hash": manifest,
            "documents": len(docs),
            "documents_used": len(plans),
            **corpus_sources(cfg.corpus.source, docs),
        },
        "sampling": cfg.sampling.model_dump(),
        "teacher": {
            "kind": cfg.teacher.kind,
            "fingerprint": teacher.fingerprint(),
            "next_tokens": cfg.teacher.next_tokens,
            "splits": list(cfg.teacher.splits),
            "last_run_stats": teacher.stats.as_dict(),
        },
        "counts": {k: summary[k] for k in ("rows", "teacher_rows", "explained", "dropped")},
        "splits": summary["splits"],
        "genres": summary["genres"],
        "norms": summary["norms"],
        # ground truth per row (data/properties.py); absent when a resumed build kept older shards
        **(
            {"properties": {"version": PROPERTIES_VERSION, "columns": list(STORED)}}
            if all(has_properties(directory / n) for n in names)
            else {}
        ),
        "shards": names,
        "throughput": {
            "shards_built": len(todo),
            "tokens": int(total_tokens),
            "seconds": round(elapsed, 2),
            "tokens_per_s": round(total_tokens / elapsed, 1) if todo else None,
        },
    }
