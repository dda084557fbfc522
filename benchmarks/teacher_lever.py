"""Could a teacher that states a fact about the model beat the text-only prompt? A one-minute
diagnostic before any training.

The NLA is scored against the prompt: the AR reading an explanation written from the text alone.
An AV that only imitates a text-only teacher can at best tie it. A teacher that also states what
the target itself predicts next (read from its logits, which the text alone does not give) would
give the AV something to say that the prompt cannot. This measures how much each kind of
statement tells about the vector, with the same linear reader for all: ridge regression from
hashed word and word-pair counts of the text to the unit vector, fit on the `ar_sft` split and
scored (FVE against the training mean direction) on the `eval` split.

    python benchmarks/teacher_lever.py [--prepare configs/quickstart.yaml] [--top 3]

Rows: the teacher's explanation (the prompt reading), the target's top next tokens alone, both,
and the prefix's last words (the text fact the teacher already states).
"""

from __future__ import annotations

import argparse
import re
import time
import zlib
from collections.abc import Sequence

import torch

from nla_variants.config import PrepareConfig, load_config
from nla_variants.core.intervals import paired_fve_difference
from nla_variants.core.padding import pad_right
from nla_variants.core.ridge import Ridge
from nla_variants.core.vectors import baseline_mse, mean_direction, normalize, normalized_mse
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.target import TargetModel, length_buckets

WORD = re.compile(r"\w+|[^\w\s]")


def hashed_counts(texts: Sequence[str], dims: int) -> torch.Tensor:
    """[n, dims] counts of each text's lower-cased words and word pairs, hashed (crc32)."""
    out = torch.zeros(len(texts), dims)
    for i, text in enumerate(texts):
        words = WORD.findall(text.lower())
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for g in grams:
            out[i, zlib.crc32(g.encode()) % dims] += 1.0
    return out


@torch.inference_mode()
def next_tokens(
    target: TargetModel, prefixes: Sequence[str], top: int
) -> tuple[list[str], torch.Tensor]:
    """The target's `top` most likely next tokens after each prefix, as one line of text, and
    the top-1 token ids [n]."""
    ids = target.tokenize(prefixes, max_tokens=512)
    out: list[str] = [""] * len(ids)
    first = torch.zeros(len(ids), dtype=torch.long)
    pad = target.tokenizer.pad_token_id or 0
    backbone, head = target.model.model, target.model.lm_head
    for batch in length_buckets([len(x) for x in ids], 8192):
        padded, mask = pad_right([ids[i] for i in batch], pad)
        with target.autocast():
            hidden = backbone(input_ids=padded, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(len(batch)), mask.sum(1) - 1]
            best = head(last).float().topk(top, dim=-1).indices
        for r, i in enumerate(batch):
            first[i] = best[r, 0]
            words = [target.tokenizer.decode([t]).strip() or "(space)" for t in best[r].tolist()]
            out[i] = "the model expects next: " + ", ".join(words)
    return out, first


@torch.inference_mode()
def lens_agreement(target: TargetModel, vectors: torch.Tensor, first: torch.Tensor) -> float:
    """Share of rows whose residual, read through the final norm and the LM head (the logit
    lens), already gives the model's own top next token: how plainly the vector states it."""
    lm = target.model
    logits = lm.lm_head(lm.model.norm(vectors.float())).float()
    return float((logits.argmax(-1) == first).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepare", default="configs/quickstart.yaml")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--dims", type=int, default=4096)
    ap.add_argument("--ridge", type=float, default=0.1, help="penalty, relative to the features")
    args = ap.parse_args()
    begin = time.perf_counter()
    cfg = load_config(args.prepare, PrepareConfig)
    ds = StoredDataset.open(prepare(cfg, progress=False).path)
    splits = {}
    for split in ("ar_sft", "eval"):
        table = ds.table(split, ["prefix", "explanation"])
        splits[split] = {
            "prefix": table.column("prefix").to_pylist(),
            "teacher": [e or "" for e in table.column("explanation").to_pylist()],
            "raw": torch.from_numpy(ds.vectors(split).copy()),
        }
        splits[split]["vectors"] = normalize(splits[split]["raw"])
    target = TargetModel(cfg.target.model, cfg.target.precision)
    for s in splits.values():
        s["model"], s["top1"] = next_tokens(target, s["prefix"], args.top)
        s["last words"] = [" ".join(WORD.findall(p)[-3:]) for p in s["prefix"]]
        s["teacher + model"] = [f"{t} {m}" for t, m in zip(s["teacher"], s["model"], strict=True)]
    train, test = splits["ar_sft"], splits["eval"]
    lens = lens_agreement(target, test["raw"], test["top1"])
    mean = mean_direction(train["vectors"])
    base = baseline_mse(test["vectors"], mean)
    mse = {}
    for reading in ("teacher", "model", "teacher + model", "last words"):
        x = hashed_counts(train[reading], args.dims)
        weight, bias = Ridge(x).solve(train["vectors"], args.ridge)
        pred = (hashed_counts(test[reading], args.dims).double() @ weight + bias).float()
        mse[reading] = normalized_mse(pred, test["vectors"])
    print(f"{len(train['prefix'])} train rows, {len(test['prefix'])} eval rows, ridge {args.ridge}")
    print("| reading | eval FVE | minus the teacher's [95% paired interval] |")
    print("|---|---|---|")
    for reading, m in mse.items():
        diff, lo, hi = paired_fve_difference(m, mse["teacher"], base)
        fve = 1 - float(m.mean() / base.mean())
        print(f"| {reading} | {fve:.3f} | {diff:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    print(f"logit lens at layer {cfg.target.layer}: the model's top next token for {lens:.0%}")
    print(f"example: {test['model'][0]!r}; wall {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
