"""How much can the model's-guess line add through the AR? The ceiling of `teacher.next_tokens`.

An AV that copied its teacher perfectly would score what the AR gets from the teacher's
explanation with the line; the prompt is the same AR on the text-only explanation. Their
difference on the same eval rows bounds `beats_prompt` for this teacher and this AR. This refits
the AR's linear head (ridge, as the warm start and RL do) on its own features of `ar_sft` rows,
each row with and without the line, for several row counts and penalties, and scores both
readings on the spread eval rows: a few minutes of AR forwards, no AV, no training.

    python benchmarks/ar_ceiling.py RUN_DIR [--rows 1024 4096] [--penalties 0.01 0.1 0.3]
        [--lines stored top10 confidence]

RUN_DIR: a run of a `teacher.next_tokens` recipe (its AR, after RL, and its dataset).

`--lines` also tries lines that say more about the model than the stored one, written here from
the target's own next-token distribution at each row's last token (the prefix re-tokenised):
`top10`, its ten most likely tokens; `confidence`, the top three with how sure the model is of
the first ("almost certainly", "probably", "perhaps", "unsure"). Each is fitted and scored like
the stored line, beside the same prompt.
"""

from __future__ import annotations

import argparse
import time

import torch

from nla_variants.artifacts.loading import load, locate
from nla_variants.core.intervals import paired_fve_difference
from nla_variants.core.ridge import Ridge
from nla_variants.core.vectors import baseline_mse, fve, mean_direction, normalize, normalized_mse
from nla_variants.data.store import StoredDataset
from nla_variants.data.teachers.predictions import LEAD, prediction_line, show_token
from nla_variants.evaluation.evaluation import scored_rows
from nla_variants.explain.explain import autocast_for
from nla_variants.training.data import load_split
from nla_variants.training.readout import head_features
from nla_variants.training.runs import read_run_record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--rows", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--penalties", type=float, nargs="+", default=[0.01, 0.1, 0.3])
    ap.add_argument("--eval-rows", type=int, default=256)
    ap.add_argument("--lines", nargs="+", default=["stored"], choices=list(LINES))
    args = ap.parse_args()
    begin = time.perf_counter()
    ref = locate(args.run_dir)
    nla = load(ref)
    ds = StoredDataset.open(read_run_record(ref.path).dataset)
    train = load_split(ds, "ar_sft").with_explanations()
    if train.prompts is None:
        raise SystemExit(f"{ds.path} keeps no text-only prompts: not a teacher.next_tokens dataset")
    g = torch.Generator().manual_seed(0)
    train = train.take(torch.randperm(len(train), generator=g)[: max(args.rows)].tolist())
    test = scored_rows(load_split(ds, "eval").with_explanations(), args.eval_rows)
    render, ctx = nla.av.render_target, (lambda: autocast_for("auto", torch.device("cpu")))

    def features(texts: list[str], sources: list[str]) -> torch.Tensor:
        return head_features(nla.ar, [render(t) for t in texts], sources, 64, ctx)

    x = {
        "train text": features(train.prompts, train.prefixes),
        "eval text": features(test.prompts, test.prefixes),
    }
    guess = None
    for kind in args.lines:
        if kind == "stored":
            lines_train, lines_test = train.explanations, test.explanations
        else:
            guess = guess or model_guesses(ref.target, train.prefixes + test.prefixes)
            write = LINES[kind]
            said = [
                f"{p}\n{write(g)}" for p, g in zip(train.prompts + test.prompts, guess, strict=True)
            ]
            lines_train, lines_test = said[: len(train)], said[len(train) :]
            print(f"{kind}, e.g.: {lines_test[0].splitlines()[-1]!r}")
        x[f"train {kind}"] = features(lines_train, train.prefixes)
        x[f"eval {kind}"] = features(lines_test, test.prefixes)
    y_train = normalize(torch.from_numpy(train.vectors.copy()))
    y_test = torch.from_numpy(test.vectors.copy())
    mean = mean_direction(y_train)
    base = baseline_mse(y_test, mean)
    print(f"{len(test)} eval rows; AR of {ref.path} ({nla.note or 'final weights'})")
    print(
        "| line | fit rows (each twice) | penalty | teacher + line | prompt | ceiling [95% paired] |"
    )
    print("|---|---|---|---|---|---|")
    for kind in args.lines:
        for n in args.rows:
            feats = torch.cat([x[f"train {kind}"][:n], x["train text"][:n]])
            ridge = Ridge(feats)
            for penalty in args.penalties:
                weight, bias = ridge.solve(torch.cat([y_train[:n], y_train[:n]]), penalty)
                mse = {
                    k: normalized_mse((x[f"eval {k}"].double() @ weight + bias).float(), y_test)
                    for k in (kind, "text")
                }
                diff, lo, hi = paired_fve_difference(mse[kind], mse["text"], base)
                line, text = fve(mse[kind], base), fve(mse["text"], base)
                print(
                    f"| {kind} | {n} | {penalty:g} | {line:.3f} | {text:.3f} | "
                    f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}] |",
                    flush=True,
                )
    print(f"wall {time.perf_counter() - begin:.0f} s")


def _sure(p: float) -> str:
    for bound, word in ((0.8, "almost certainly"), (0.5, "probably"), (0.2, "perhaps")):
        if p >= bound:
            return word
    return "unsure, maybe"


def _confidence(guess: tuple[list[str], list[float]]) -> str:
    tokens, probs = guess
    shown = list(dict.fromkeys(show_token(t) for t in tokens[:3]))
    rest = f"; then {' or '.join(shown[1:])}" if len(shown) > 1 else ""
    return f"{LEAD} {_sure(probs[0])} {shown[0]}{rest}"


LINES = {
    "stored": None,
    "top10": lambda guess: prediction_line(guess[0][:10]),
    "confidence": _confidence,
}


@torch.inference_mode()
def model_guesses(target: str, prefixes: list[str]) -> list[tuple[list[str], list[float]]]:
    """The target's ten most likely next tokens (decoded) and their probabilities after each
    prefix, from one forward of its last 256 tokens."""
    from nla_variants.target import TargetModel

    model = TargetModel(target)
    out = []
    for prefix in prefixes:
        ids = model.tokenize([prefix])[0][-256:]
        with model.autocast():
            logits = model.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        probs, index = torch.softmax(logits, -1).topk(10)
        out.append(([model.tokenizer.decode([int(i)]) for i in index], probs.tolist()))
    return out


if __name__ == "__main__":
    main()
