"""`nla search` measured: precision@k of property queries against their chance rate, and the time
one query takes (the AR's forward pass, then the search over every vector of the dataset).

Each query is written the way the heuristic teacher words the property, so the AR has seen its
like in training; the faithfulness readers decide which property (and value) a query states.

    python benchmarks/search.py RUN_DIR [--dataset DIR] [--k 20]

RUN_DIR: a trained run (the recipe's, `configs/train_recipe.yaml`); the dataset defaults to the
run's own (the recipe's ~20,800 vectors).
"""

from __future__ import annotations

import argparse
import statistics

from scipy.stats import binomtest

from nla_variants.tools.search import searcher
from nla_variants.training.runs import read_run_record

QUERIES = (
    "Python source code",
    "A dialogue transcript",
    "Narrative fiction in prose",
    "Structured data with short delimited lines",
    "Technical documentation",
    "Expository prose",
    "Inside a list item; the rest of the item follows",
    "Inside an open string literal; it must be closed with a quote",
    "Within unclosed quoted speech; the speech continues",
    "Inside an unclosed parenthesis; its closing parenthesis must follow",
    'Ends mid-word on "th"; the word must be completed',
    "At the start of a new line",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--dataset")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    dataset = args.dataset or read_run_record(args.run).dataset
    find = searcher(args.run, dataset, precision=args.precision)
    find(QUERIES[0], args.k)  # a warm-up: first-call allocations are not the search's cost
    print(f"{len(find.ids)} vectors; precision@{args.k} (95% Clopper-Pearson) against chance\n")
    print("| query | states | precision@k [95%] | chance | AR s | search s |")
    print("|---|---|---|---|---|---|")
    times = []
    for q in QUERIES:
        res = find(q, args.k)
        times.append(res.seconds)
        if not res.precision:
            print(
                f"| {q} | nothing | - | - | {res.seconds['reconstruct']:.3f} | "
                f"{res.seconds['search']:.3f} |"
            )
        for name, p in res.precision.items():
            hits = round(p.precision * p.scored)
            ci = binomtest(hits, p.scored).proportion_ci() if p.scored else None
            interval = f" [{ci.low:.2f}, {ci.high:.2f}]" if ci else ""
            print(
                f"| {q} | {name} = {p.stated!r} | {p.precision:.2f}{interval} | {p.chance:.2f} | "
                f"{res.seconds['reconstruct']:.3f} | {res.seconds['search']:.3f} |"
            )
    for part in ("reconstruct", "search"):
        print(f"\nmedian {part}: {statistics.median(t[part] for t in times):.3f} s", end="")
    print()


if __name__ == "__main__":
    main()
