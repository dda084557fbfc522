"""`nla search`: where does the model think X? The AR turns a description into an activation, and
the dataset's activations nearest to it (by cosine) are the places the model is in that state.

Why: the AR maps text to the activation space, so it is a query encoder for a whole dataset, not
only the second half of a round trip. When the query states a property the dataset knows for
every row (a genre, "inside a list item", a last word: the faithfulness readers decide, see
nla_variants/evaluation/faithfulness.py), the hits can be checked: precision@k against that ground truth,
beside its chance rate (the share of all rows where it holds).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nla_variants.common.errors import NLAError
from nla_variants.common.schema import DatasetSidecar


@dataclass
class Hit:
    rank: int
    cosine: float
    example_id: str
    split: str
    prefix_end: str  # the prefix's last characters, where the activation is
    properties: dict[str, Any]


@dataclass
class Precision:
    stated: Any  # the value the query states for the property
    precision: float  # share of the top-k rows (where the property is defined) with that value
    chance: float  # the same share over every row of the searched split(s)
    scored: int  # top-k rows where the property is defined


@dataclass
class SearchResult:
    query: str
    dataset: str
    split: str | None
    k: int
    rows: int  # vectors searched
    hits: list[Hit]
    precision: dict[str, Precision] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # reconstruct, search

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_inputs(query: str, k: int) -> None:
    if not query or not query.strip():
        raise NLAError("--query is empty", 'pass the description to search for, e.g. "Python code"')
    if k < 1:
        raise NLAError(f"--k {k} is below 1", "ask for at least one hit")


def open_dataset(path: str, split: str | None):
    """The dataset to search, refusing one without vectors (or without rows in `split`)."""
    from nla_variants.data.store import StoredDataset

    p = Path(path)
    if not (p / DatasetSidecar.FILE).is_file():
        raise NLAError(f"--dataset {path} is not a prepared dataset", "pass a dataset directory")
    ds = StoredDataset.open(p)
    if not ds.has_column("vector"):
        raise NLAError(f"dataset {path} holds no vectors", "prepare one with nla prepare")
    if split is not None and split not in ds.meta.splits:
        known = ", ".join(ds.meta.splits)
        raise NLAError(f"--split {split} is not a split of {path}", f"pass one of: {known}")
    return ds


def _claims(query: str, present: list[str]) -> dict[str, Any]:
    """The properties the query states a value for (as the faithfulness readers read it)."""
    from nla_variants.evaluation.faithfulness import stated

    out = {}
    for name in present:
        value = stated(name, query)
        if value is not None:
            out[name] = value
    return out


def _precision(name: str, said: Any, truths: list[Any], top: np.ndarray) -> Precision | None:
    from nla_variants.evaluation.faithfulness import defined, matches

    ok = np.array([defined(name, t) and matches(name, said, t) for t in truths])
    scored = np.array([defined(name, t) for t in truths])
    if not scored.any() or not scored[top].any():
        return None
    chance = float(ok[scored].mean())
    return Precision(said, float(ok[top][scored[top]].mean()), chance, int(scored[top].sum()))


class Searcher:
    """An NLA's AR and one dataset's normalised vectors and properties, loaded once, so each
    query costs one AR forward pass and one matrix-vector product."""

    def __init__(self, nla, ds, split: str | None, device: torch.device, precision: str) -> None:
        from nla_variants.data.properties import load_properties
        from nla_variants.target import autocast_context, resolve_precision

        if nla.ar is None:
            raise NLAError("the NLA has no AR", "search with an NLA that has both models")
        self.nla, self.ds, self.split = nla, ds, split
        self.autocast = autocast_context(device, resolve_precision(precision, device))
        self.vectors = torch.nn.functional.normalize(torch.tensor(ds.vectors(split)), dim=-1)
        self.table = ds.table(split, ["example_id", "split", "prefix"])
        self.ids = self.table.column("example_id").to_pylist()
        props = load_properties(ds, split)
        self.props = props if props.example_ids == self.ids else props.take(self.ids)
        self.present = self.props.present()

    def __call__(self, query: str, k: int) -> SearchResult:
        from nla_variants.evaluation.rollouts import ar_predict

        check_inputs(query, k)
        t0 = time.perf_counter()
        with self.autocast:
            text = self.nla.av.render_target(query.strip())
            pred = ar_predict(self.nla.ar, [text], [""], 1)[0]
        t1 = time.perf_counter()
        cosine = self.vectors @ torch.nn.functional.normalize(pred.float(), dim=0)
        top = torch.topk(cosine, min(k, len(cosine))).indices.numpy()
        t2 = time.perf_counter()
        column = self.table.column
        hits = [
            Hit(
                rank + 1,
                round(float(cosine[i]), 5),
                self.ids[i],
                column("split")[int(i)].as_py(),
                column("prefix")[int(i)].as_py()[-120:],
                {name: self.props.values[name][i] for name in self.present},
            )
            for rank, i in enumerate(top)
        ]
        precision = {}
        for name, said in _claims(query, self.present).items():
            found = _precision(name, said, self.props.values[name], top)
            if found is not None:
                precision[name] = found
        seconds = {"reconstruct": t1 - t0, "search": t2 - t1}
        path = str(self.ds.path)
        return SearchResult(query, path, self.split, k, len(self.ids), hits, precision, seconds)


def searcher(
    nla_path: str,
    dataset: str,
    *,
    split: str | None = None,
    device: str | None = None,
    target: str | None = None,
    precision: str = "auto",
) -> Searcher:
    """Load the NLA at `nla_path` and the dataset to search (both checked before weights load:
    the dataset must hold activations of the NLA's target and layer)."""
    from nla_variants.artifacts.loading import load, locate
    from nla_variants.target import default_device
    from nla_variants.tools.evaluate_nla import check_match

    ref = locate(nla_path, target)
    ds = open_dataset(dataset, split)
    check_match(ref, ds.meta, ds.path)
    dev = torch.device(device) if device else default_device()
    return Searcher(load(ref, dev), ds, split, dev, precision)


def search(nla_path: str, query: str, dataset: str, *, k: int = 50, **options: Any) -> SearchResult:
    """The k dataset activations nearest the AR's reading of `query` (options: `searcher`'s)."""
    check_inputs(query, k)
    return searcher(nla_path, dataset, **options)(query, k)


def print_result(res: SearchResult, rows: int = 20) -> None:
    """The first `rows` hits, then each stated property's precision@k against chance."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(
        "rank", "cosine", "example", "prefix end", "properties", title=f"nla search: {res.query!r}"
    )
    for h in res.hits[:rows]:
        true = [f"{k}={v}" for k, v in h.properties.items() if v not in (None, False)]
        t.add_row(
            str(h.rank),
            f"{h.cosine:.3f}",
            h.example_id,
            repr(h.prefix_end[-50:]),
            ", ".join(true[:4]),
        )
    console.print(t)
    scope = f"split {res.split}" if res.split else "every split"
    console.print(
        f"{len(res.hits)} nearest of {res.rows} vectors ({scope}) by cosine to the AR's reading"
    )
    for name, p in res.precision.items():
        console.print(
            f"the query states {name} = {p.stated!r}: precision@{res.k} {p.precision:.2f} "
            f"({p.scored} scored) against chance {p.chance:.2f}",
            highlight=False,
        )
    if not res.precision:
        console.print("the query states no property the dataset knows: no precision to report")
