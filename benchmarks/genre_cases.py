"""Write the genre organism's audit cases (issue 28): texts of every genre from the builtin
corpus's generated documents, none of which the genre organisms or the diff NLA trained on.

    python benchmarks/genre_cases.py --exclude-dataset .nla/datasets/diff-narrative-* \
        --out configs/cases/genre_texts.jsonl

Each case is a document's opening (about `--chars` characters, cut at a space) with its genre.
Only generated documents are used: their text does not move with the installed Python (the
stdlib-derived ones do). The genre organisms' own documents (configs/finetune_narrative.yaml and
finetune_dialogue.yaml) are always excluded; `--exclude-dataset` also drops every document a
prepared dataset used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from nla_variants.common.io import write_text_atomic
from nla_variants.config import load_config
from nla_variants.data.builtin import build_builtin_corpus
from nla_variants.data.documents import GENRES
from nla_variants.target import resolve_model
from nla_variants.training.finetune import FinetuneConfig, _select

CONFIGS = Path(__file__).parents[1] / "configs"
ORGANISMS = ("finetune_narrative.yaml", "finetune_dialogue.yaml")


def opening(text: str, chars: int) -> str:
    """The text's first `chars` characters, cut back to the last space."""
    return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exclude-dataset", nargs="*", default=[], help="prepared dataset dirs")
    ap.add_argument("--per-genre", type=int, default=20)
    ap.add_argument("--chars", type=int, default=320)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    used = set()
    for name in ORGANISMS:
        cfg = load_config(CONFIGS / name, FinetuneConfig)
        used |= {d.doc_id for d in _select(cfg, resolve_model(cfg.model))}
    for d in args.exclude_dataset:
        for shard in sorted(Path(d).glob("shard-*.parquet")):
            used |= set(pd.read_parquet(shard, columns=["doc_id"])["doc_id"])
    docs = [d for d in build_builtin_corpus(seed=0) if "/generated/" in d.doc_id]
    rows = []
    for genre in GENRES:
        fresh = [d for d in docs if d.genre == genre and d.doc_id not in used]
        if len(fresh) < args.per_genre:
            raise SystemExit(f"only {len(fresh)} unused {genre} documents")
        step = len(fresh) // args.per_genre  # spread over the genre's documents
        rows += [
            {"text": opening(d.text, args.chars), "genre": genre, "doc": d.doc_id}
            for d in fresh[::step][: args.per_genre]
        ]
    write_text_atomic(args.out, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} cases ({args.per_genre} per genre) -> {args.out}; {len(used)} excluded")


if __name__ == "__main__":
    main()
