"""Does editing an explanation steer the model, and better than the standard steering vectors?

Three kinds of edit whose effect can be checked without a judge, on eval rows of the run's
dataset, each written the way `nla steer` writes it (replace: the AR's reading of the edited
explanation at the residual's norm, at the row's last token and every generated one, as
`--through` does):
- next word: the model's-guess line says "X" first; X becomes Y, the model's 10th most likely
  token there. Success: Y's probability rises and its rank improves.
- genre: an explanation stating narrative becomes "Python source code", and code becomes
  "Narrative fiction in prose" (its first line replaced). Two successes, each against the
  unsteered row of the same batch, each measured with the corpus's own statistics rather than a
  direction that is also a steering condition: (a) the continuation reads more like the target
  genre than the source genre under per-genre unigram models of the train rows' next tokens (a
  log-likelihood ratio that must rise); (b) the next-token mass on the target genre's typical
  tokens rises relative to the source genre's (the dataset's most over-represented next tokens of
  each genre). A change that only spreads the distribution raises both masses, so (b) compares
  their ratio.
- structure: "Inside a list item; the rest of the item follows" is added to a row that is not in
  a list. Success: the greedy continuation starts a list item line.

Each edit sits beside no change at all (the base rate), the edit written as `--mode add` does (the
change it made to the AR's reading) and four controls, all at the same norm as the edit's change
and written the same way: the unedited round trip (the AV's own explanation through the AR: the autoencoder's
noise), a random direction, the mean difference of the target class and the source class
(ActAdd-style, from the train splits) and the linear probe's direction for the target class.
Fluency: the perplexity of the steered continuation under the unsteered model, and the KL of the
next-token distribution. Rates come with 95% Clopper-Pearson intervals, means with t intervals.

    python benchmarks/steering.py RUN_DIR [--per-kind 200] [--new-tokens 12]

RUN_DIR: a `teacher.next_tokens` run (its explanations carry the model's-guess line), e.g. the
recipe's (`configs/train_recipe.yaml`).
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections import Counter

import numpy as np
import torch
from scipy import stats

from nla_variants.artifacts.loading import load, locate
from nla_variants.data.properties import PropertyTable, load_properties
from nla_variants.data.store import StoredDataset
from nla_variants.data.teachers.predictions import LEAD
from nla_variants.evaluation.evaluation import scored_rows
from nla_variants.evaluation.faithfulness import stated
from nla_variants.evaluation.rollouts import ar_predict, generate_all
from nla_variants.target import TargetModel, decoder_blocks
from nla_variants.tools.steer import ResidualWriter
from nla_variants.training.data import load_split
from nla_variants.training.runs import read_run_record

GENRE_PHRASE = {"code": "Python source code", "narrative": "Narrative fiction in prose"}
LIST_LINE = "Inside a list item; the rest of the item follows"
LIST_START = re.compile(r"\n\s*(?:[-*•+]|\d+[.)])\s")
CONTROLS = ("none", "edit", "roundtrip", "edit_add", "random", "mean_diff", "probe")


def typical_tokens(genres: list, next_ids: list[int], genre: str, n: int = 50) -> set[int]:
    """The next-token ids most over-represented in `genre` rows (log-ratio, at least 20 rows)."""
    inside = Counter(t for g, t in zip(genres, next_ids, strict=True) if g == genre and t >= 0)
    overall = Counter(t for t in next_ids if t >= 0)
    total_in, total = sum(inside.values()), sum(overall.values())
    score = {
        t: math.log((c / total_in) / (overall[t] / total)) for t, c in inside.items() if c >= 20
    }
    return set(sorted(score, key=score.get, reverse=True)[:n])


def lean(logp: torch.Tensor, typical: dict[str, set[int]], goal: str, source: str) -> float:
    """log(next-token mass on goal's typical tokens / mass on source's typical tokens)."""
    return float(logp[list(typical[goal])].logsumexp(0) - logp[list(typical[source])].logsumexp(0))


class GenreWords:
    """Per-genre unigram models of the train rows' next tokens (add-one smoothed): how much more a
    token sequence reads like one genre than another, with no direction a condition steers by."""

    def __init__(self, genres: list, next_ids: list[int], vocab: int) -> None:
        self.logp: dict[str, torch.Tensor] = {}
        for g in {x for x in genres if x}:
            counts = torch.ones(vocab)
            ids = [t for x, t in zip(genres, next_ids, strict=True) if x == g and 0 <= t < vocab]
            counts.index_add_(0, torch.tensor(ids, dtype=torch.long), torch.ones(len(ids)))
            self.logp[g] = (counts / counts.sum()).log()

    def ratio(self, ids: torch.Tensor, goal: str, source: str) -> float:
        """log P(ids | goal) - log P(ids | source), summed over the tokens."""
        return float((self.logp[goal][ids] - self.logp[source][ids]).sum())


class Directions:
    """Class means and probe directions in raw residual space, from the train splits."""

    def __init__(self, ds: StoredDataset) -> None:
        from nla_variants.evaluation.faithfulness import fit_probes

        vectors = ds.training_vectors()
        props = [load_properties(ds, s) for s in ("av_sft", "ar_sft")]
        self.values = {k: props[0].values[k] + props[1].values[k] for k in props[0].values}
        self.x = torch.from_numpy(vectors).float()
        sample = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(0))[:8000]
        table = PropertyTable(
            [str(i) for i in sample.tolist()],
            {k: [v[i] for i in sample.tolist()] for k, v in self.values.items()},
            False,
        )
        names = ["genre", "in_list_item"]
        self.probes, (_, self.std) = fit_probes(vectors[sample.numpy()], table, names)

    def mean_diff(self, name: str, target, source=None) -> torch.Tensor | None:
        v = self.values[name]
        yes = torch.tensor([x == target for x in v])
        no = torch.tensor([x == source for x in v]) if source is not None else ~yes
        if yes.sum() < 5 or no.sum() < 5:
            return None
        return self.x[yes].mean(0) - self.x[no].mean(0)

    def probe(self, name: str, target) -> torch.Tensor | None:
        p = self.probes.get(name)
        if p is None or target not in p.classes:
            return None
        return (p.weight[:, p.classes.index(target)] / self.std).float()  # raw-space gradient


def print_rows(label: str, results: dict[str, list[tuple[bool, float, float]]]) -> None:
    """One markdown row per condition: success rate [95% Clopper-Pearson], mean KL, median ppl."""
    for name in CONTROLS:
        got = results[name]
        if not got:
            print(f"| {label} | {name} | 0 | - | - | - |")
            continue
        wins = sum(g[0] for g in got)
        ci = stats.binomtest(wins, len(got)).proportion_ci()
        kl = np.array([g[1] for g in got])
        ppl = np.array([g[2] for g in got])
        print(
            f"| {label} | {name} | {len(got)} | {wins / len(got):.2f} [{ci.low:.2f}, "
            f"{ci.high:.2f}] | {kl.mean():.3f} | {np.median(ppl):.1f} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--per-kind", type=int, default=200)
    ap.add_argument("--new-tokens", type=int, default=12)
    ap.add_argument("--pool", type=int, default=0, help="eval rows explained (0: 4 x per-kind)")
    args = ap.parse_args()
    begin = time.perf_counter()
    torch.manual_seed(0)
    ref = locate(args.run)
    nla = load(ref)
    ds = StoredDataset.open(read_run_record(ref.path).dataset)
    target = TargetModel(ref.target)
    tok = target.tokenizer
    rows = scored_rows(load_split(ds, "eval"), args.pool or 4 * args.per_kind)
    props = load_properties(ds, "eval").take(rows.example_ids)
    print(f"explaining {len(rows)} eval rows ...", flush=True)
    vectors = torch.from_numpy(np.asarray(rows.vectors)).float()
    texts, _ = generate_all(nla.av, vectors, 32, 96, None, target.autocast())
    said = [nla.av.extract(t) for t in texts]
    directions = Directions(ds)
    train = [ds.table(s, ["genre", "next_token_id"]) for s in ("av_sft", "ar_sft")]
    genres = sum((t.column("genre").to_pylist() for t in train), [])
    next_ids = sum((t.column("next_token_id").to_pylist() for t in train), [])
    typical = {g: typical_tokens(genres, next_ids, g) for g in {*genres} - {None}}
    words = GenreWords(genres, next_ids, len(tok))

    edits = {"next word": [], "genre": [], "structure": []}
    for i, e in enumerate(said):
        if e is None:
            continue
        lead = [line for line in e.splitlines() if line.startswith(LEAD)]
        quoted = re.findall(r'"([^"]+)"', lead[0]) if lead else []
        if quoted:
            edits["next word"].append((i, e, quoted[0]))
        genre = stated("genre", e)
        if genre in GENRE_PHRASE:
            edits["genre"].append((i, e, genre))
        if not props.values["in_list_item"][i] and "list item" not in e:
            edits["structure"].append((i, e, None))
    print("| kind | condition | n | success [95%] | KL next token | continuation ppl |")
    print("|---|---|---|---|---|---|")
    for kind, chosen in edits.items():
        results = {c: [] for c in CONTROLS}
        by_mass = {c: [] for c in CONTROLS}  # genre's second test
        for i, e, info in chosen[: args.per_kind]:
            ids = target.tokenize([rows.prefixes[i]])[0][-256:]
            p = len(ids) - 1
            h = torch.from_numpy(target.residuals([ids], ref.layer, [[p]])[0][0]).float()
            with torch.inference_mode(), target.autocast():
                logits = target.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            logp0 = torch.log_softmax(logits, -1)
            if kind == "next word":
                y = int(logp0.topk(10).indices[-1])
                shown = tok.decode([y]).strip().replace('"', "")
                if not shown:
                    continue
                line = next(x for x in e.splitlines() if x.startswith(LEAD))
                edited = e.replace(line, line.replace(f'"{info}"', f'"{shown}"', 1))
                md = directions.mean_diff("next_token", tok.decode([y]))
                pr = None
            elif kind == "genre":
                goal = "code" if info == "narrative" else "narrative"
                first = e.splitlines()[0]
                edited = e.replace(first, GENRE_PHRASE[goal], 1)
                md = directions.mean_diff("genre", goal, info)
                pr = directions.probe("genre", goal)
            else:
                edited = e + "\n" + LIST_LINE
                md = directions.mean_diff("in_list_item", True)
                pr = directions.probe("in_list_item", True)
            prefix = tok.decode(ids)
            with torch.inference_mode(), target.autocast():
                r = ar_predict(nla.ar, [edited, e], [prefix, prefix], 2)
            unit = torch.nn.functional.normalize(r.float(), dim=-1)
            delta = unit[0] * h.norm() - h
            size = delta.norm()
            rand = torch.randn_like(h)
            changes = {
                "none": torch.zeros_like(h),
                "edit": delta,
                "roundtrip": unit[1] * h.norm() - h,
                "edit_add": (unit[0] - unit[1])
                / (unit[0] - unit[1]).norm().clamp_min(1e-12)
                * size,
                "random": rand / rand.norm() * size,
                "mean_diff": None if md is None else md / md.norm() * size,
                "probe": None if pr is None else pr / pr.norm() * size,
            }
            names = [n for n, c in changes.items() if c is not None]
            batch = torch.stack([changes[n] for n in names])  # one row per condition
            inputs = torch.tensor([ids] * len(names))
            block = decoder_blocks(target.model)[ref.layer - 1]
            hook = block.register_forward_hook(ResidualWriter(batch, p, True))
            try:
                with torch.inference_mode(), target.autocast():
                    out = target.model.generate(
                        inputs,
                        attention_mask=torch.ones_like(inputs),
                        max_new_tokens=args.new_tokens,
                        min_new_tokens=args.new_tokens,  # equal lengths: one batch, no padding
                        do_sample=False,
                        pad_token_id=tok.pad_token_id or 0,
                        output_logits=True,
                        return_dict_in_generate=True,
                    )
            finally:
                hook.remove()
            first = torch.log_softmax(out.logits[0].float(), -1)  # [conditions, vocab]
            logp0 = first[names.index("none")]  # the unsteered row of the same batch
            conts = out.sequences[:, len(ids) :]
            with torch.inference_mode(), target.autocast():  # fluency under the unsteered model
                lp = torch.log_softmax(target.model(input_ids=out.sequences).logits.float(), -1)
            nll = -lp[:, len(ids) - 1 : -1].gather(-1, conts[..., None])[..., 0].mean(-1)
            for k, name in enumerate(names):
                logp1, cont = first[k], conts[k]
                kl = float((logp1.exp() * (logp1 - logp0)).sum())
                if kind == "next word":
                    rank0, rank1 = int((logp0 > logp0[y]).sum()), int((logp1 > logp1[y]).sum())
                    ok = logp1[y] > logp0[y] and rank1 < rank0
                elif kind == "genre":
                    ok = words.ratio(cont, goal, info) > words.ratio(
                        conts[names.index("none")], goal, info
                    )
                    up = lean(logp1, typical, goal, info) > lean(logp0, typical, goal, info)
                    by_mass[name].append((up, kl, float(nll[k].exp())))
                else:
                    ok = bool(LIST_START.search("\n" + tok.decode(cont)))
                results[name].append((bool(ok), kl, float(nll[k].exp())))
        tables = {kind: results}
        if kind == "genre":
            tables = {"genre (continuation)": results, "genre (next-token mass)": by_mass}
        for label, table in tables.items():
            print_rows(label, table)
    print(f"wall {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
