"""Sweeps on the tiny model: the study and its MLflow record, shared warm starts, failures,
pruning, resume after a real kill, bad input, and `compare` on a synthetic study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from nla_variants.cli import main
from nla_variants.config import TrialConfig, get_dotted, load_config
from nla_variants.sweeps import runner as sweep_mod
from nla_variants.sweeps.report import rows, to_csv
from nla_variants.sweeps.runner import SweepRunner, aggregate
from nla_variants.sweeps.spec import load_sweep


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model_dir, sweep_yaml):
    tmp = tmp_path_factory.mktemp("sweep")
    path = sweep_yaml(tmp, tiny_model_dir, seeds=2)
    assert main(["sweep", str(path), "-q"]) == 0
    return tmp, path


def test_sweep_runs_every_trial_over_every_seed(swept, study_of):
    tmp, _ = swept
    study = study_of(tmp)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == len(study.trials) == 2
    for t in done:
        per_seed = t.user_attrs["seed_metrics"]
        assert sorted(per_seed) == ["0", "1"]
        fves = [m["eval/roundtrip_fve"] for m in per_seed.values()]
        assert t.values[0] == pytest.approx(sum(fves) / 2)


def test_identical_warm_starts_are_reused_across_trials(swept, study_of):
    tmp, _ = swept
    first, second = sorted(study_of(tmp).trials, key=lambda t: t.number)
    for seed in ("0", "1"):  # the warm start depends on the seed, not on the RL settings
        assert "av_sft/cache_hit" not in first.user_attrs["seed_metrics"][seed]
        assert second.user_attrs["seed_metrics"][seed]["av_sft/cache_hit"] == 1.0
        assert second.user_attrs["seed_metrics"][seed]["ar_sft/cache_hit"] == 1.0
    assert len(list((tmp / "warm_starts").iterdir())) == 4  # {av, ar} x 2 seeds


def test_mlflow_has_a_parent_run_trial_children_and_seed_grandchildren(swept):
    tmp, _ = swept
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    client = MlflowClient()
    exp = client.get_experiment_by_name("sweep-tests")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("sweep.parent") == "tiny-sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    trials = [r for r in runs if r.data.tags.get("nla.role") == "trial"]
    assert sorted(r.data.tags["sweep.trial"] for r in trials) == ["0", "1"]
    for tr in trials:
        assert tr.data.tags["mlflow.parentRunId"] == parent
        assert tr.data.tags["av.variant"] == "baseline"
        assert "eval/roundtrip_fve.std" in tr.data.metrics
        seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tr.info.run_id]
        assert sorted(r.data.tags["sweep.seed"] for r in seeds) == ["0", "1"]
        assert all(r.data.tags["sweep.study"] == "tiny-sweep" for r in seeds)
        assert all(r.data.tags["nla.state"] == "FINISHED" for r in seeds)
        for r in seeds:  # the learning curves, from the run's own RL evaluations
            pictures = {a.path for a in client.list_artifacts(r.info.run_id, "curves")}
            assert pictures == {"curves/learning_curve.png"}
    art = {a.path for a in client.list_artifacts(parent, "compare")}
    assert "compare/comparison.csv" in art


def test_best_config_is_a_ready_to_run_trial(swept, study_of):
    tmp, _ = swept
    best = load_config(tmp / "sweep" / "best.yaml", TrialConfig)
    top = study_of(tmp).best_trial
    assert best.train.rl.kl_coef == pytest.approx(top.params["train.rl.kl_coef"])
    assert best.train.rl.steps == 2


def test_explain_and_export_read_the_best_trials_run(swept, capsys, study_of):
    from nla_variants.artifacts.loading import locate

    tmp, path = swept
    best = study_of(tmp).best_trial
    for target in (tmp / "sweep", path):  # the sweep's directory or its config
        ref = locate(target)
        assert ref.kind == "run" and ref.path.name == best.user_attrs["mlflow_run_ids"][1]
        assert ref.detail["weights"] == "after RL"  # the NLA the trial's evaluation scored
    # the weights alone, after both RL steps: no optimiser states
    from nla_variants.training.checkpoint import OPTIMIZER, SIDECAR, WEIGHTS

    for kind in ("av", "ar"):
        kept = locate(tmp / "sweep").path / "rl_checkpoint" / kind
        assert (kept / WEIGHTS).is_file() and not (kept / OPTIMIZER).exists()
        assert yaml.safe_load((kept / SIDECAR).read_text())["step"] == 2
    out = tmp / "best.jsonl"
    args = ["--positions", "0", "--max-new-tokens", "8", "--precision", "fp32", "-q"]
    code = main(["explain", str(tmp / "sweep"), "--text", "A harbor.", "--out", str(out), *args])
    assert code == 0, capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1


def test_compare_writes_table_csv_markdown_and_plots(swept, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich folds headers on a narrow terminal
    tmp, path = swept
    assert main(["compare", str(tmp / "sweep")]) == 0
    out = capsys.readouterr().out
    assert "FVE" in out and "best first" in out and "prompt FVE" in out
    report = tmp / "sweep" / "report"
    lines = (report / "comparison.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("trial,state,variant,params,n_seeds")
    assert "| trial | variant |" in (report / "comparison.md").read_text()
    assert (report / "plots" / "optimization_history.png").stat().st_size > 1000
    assert (report / "plots" / "estimate_roundtrip_fve.png").stat().st_size > 1000


def test_compare_pairs_trials_row_by_row_with_intervals_verdicts_and_power(
    swept, study_of, capsys, monkeypatch
):
    import csv

    monkeypatch.setenv("COLUMNS", "200")
    tmp, path = swept
    trials = sorted(study_of(tmp).trials, key=lambda t: t.number)
    for t in trials:  # each seed's per-row scores, where the trial's run wrote them
        assert sorted(t.user_attrs["seed_rows"]) == ["0", "1"]
        assert all(Path(p).is_file() for p in t.user_attrs["seed_rows"].values())
    reference = str(trials[0].number)
    argv = ["compare", str(tmp / "sweep"), "--reference", reference, "--resolve", "0.01"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "paired eval rows and 2 seeds" in out and "minus kl_coef=" not in out
    assert f"minus {trials[0].params['train.rl.kl_coef']:.3g}" in out
    assert "(paired; verdicts Holm-corrected)" in out and "resolves differences of" in out
    with open(tmp / "sweep" / "report" / "comparison.csv") as fh:
        lines = {r["trial"]: r for r in csv.DictReader(fh)}
    other = lines[str(trials[1].number)]
    per_seed = [trials[i].user_attrs["seed_metrics"] for i in (0, 1)]
    want = (
        sum(
            per_seed[1][s]["eval/roundtrip_fve"] - per_seed[0][s]["eval/roundtrip_fve"]
            for s in ("0", "1")
        )
        / 2
    )
    assert float(other["eval/roundtrip_fve.diff"]) == pytest.approx(want, abs=1e-4)
    low, high = (
        float(other["eval/roundtrip_fve.diff_low"]),
        float(other["eval/roundtrip_fve.diff_high"]),
    )
    assert low <= want <= high
    assert other["eval/roundtrip_fve.verdict"] in {"better", "worse", "unresolved"}
    assert 0 <= float(other["eval/roundtrip_fve.p_holm"]) <= 1
    mine = lines[reference]
    assert mine["eval/roundtrip_fve.diff"] == "" and mine["eval/roundtrip_fve.low"] != ""
    # the per-row files gone (a copied study): intervals from seeds, and the output says so
    files = [Path(p) for t in trials for p in t.user_attrs["seed_rows"].values()]
    for f in files:
        f.rename(f.with_suffix(".away"))
    try:
        assert main(["compare", str(tmp / "sweep")]) == 0
        assert "from seeds alone" in capsys.readouterr().out
    finally:
        for f in files:
            f.with_suffix(".away").rename(f)


def test_compare_cross_reads_each_av_with_every_ar_and_after_rewrites(
    swept, study_of, capsys, monkeypatch
):
    import csv

    monkeypatch.setenv("COLUMNS", "200")
    tmp, _ = swept
    assert main(["compare", str(tmp / "sweep"), "--cross"]) == 0
    out = capsys.readouterr().out
    assert "cross-reconstruction FVE" in out and "FVE lost under rewrites" in out
    report = tmp / "sweep" / "report"
    with open(report / "cross.csv") as fh:
        lines = list(csv.DictReader(fh))
    # AV x AR, each AV's two margins, then each preset's three rewrites
    assert len(lines) == 2 * 2 + 2 * 2 + 2 * 3
    for t in study_of(tmp).trials:
        name = f"{t.params['train.rl.kl_coef']:.3g}"
        per_seed = t.user_attrs["seed_metrics"]
        recorded = sum(per_seed[s]["eval/roundtrip_fve"] for s in ("0", "1")) / 2
        (diagonal,) = [r for r in lines if r["av"] == name and r["reader"] == name]
        # the diagonal reads the same explanations with the same AR again: the round trip
        assert float(diagonal["fve"]) == pytest.approx(recorded, abs=0.02)
        assert float(diagonal["low"]) <= float(diagonal["fve"]) <= float(diagonal["high"])
        rewrites = [r for r in lines if r["av"] == name and r["reader"].startswith(f"{name}:")]
        assert len(rewrites) == 3 and all(0 <= float(r["rewritten"]) <= 1 for r in rewrites)
        # with two presets the best other AR is the only other one: both margins agree
        (others,) = [r for r in lines if r["av"] == name and r["reader"] == "own-minus-others"]
        (best,) = [r for r in lines if r["av"] == name and r["reader"].startswith("own-minus:")]
        assert best["reader"] != f"own-minus:{name}"
        assert float(best["fve"]) == pytest.approx(float(others["fve"]), abs=1e-9)
    assert "own - best other" in (report / "cross.md").read_text()
    assert (report / "plots" / "cross_matrix.png").stat().st_size > 1000


def test_compare_cross_on_files_without_explanations_is_one_line(swept, study_of, capsys):
    tmp, _ = swept
    files = [Path(p) for t in study_of(tmp).trials for p in t.user_attrs["seed_rows"].values()]
    for f in files:
        f.rename(f.with_suffix(".away"))
    try:
        assert main(["compare", str(tmp / "sweep"), "--cross"]) == 2
    finally:
        for f in files:
            f.with_suffix(".away").rename(f)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kept its eval explanations" in err[0]
    assert main(["compare", str(tmp / "sweep"), "--device", "cpu"]) == 2
    assert "without --cross" in capsys.readouterr().err


def test_rerunning_a_finished_sweep_repeats_nothing(swept, study_of):
    tmp, path = swept
    before = [(t.number, t.values) for t in study_of(tmp).trials]
    assert main(["sweep", str(path), "-q"]) == 0
    assert [(t.number, t.values) for t in study_of(tmp).trials] == before


def failing_for(monkeypatch, key: str, value) -> None:
    """Trials whose config has `key` (dotted) == `value` fail inside run_trial, as a failure no
    check before the trial can foresee (a value the target rules out is refused up front)."""
    real = sweep_mod.run_trial

    def run_trial(cfg, *args, **kwargs):
        if get_dotted(cfg.model_dump(mode="json"), key) == value:
            raise RuntimeError(f"boom: {key}={value} broke mid-trial")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(sweep_mod, "run_trial", run_trial)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    tmp_path, tiny_model_dir, study_of, sweep_yaml, monkeypatch
):
    failing_for(monkeypatch, "train.rl.kl_coef", 0.5)
    path = sweep_yaml(
        tmp_path,
        tiny_model_dir,
        space={"train.rl.kl_coef": {"choices": [0.05, 0.5]}},
        sampler={"kind": "grid"},
        n_trials=None,
    )
    assert main(["sweep", str(path), "-q"]) == 0
    assert len(study_of(tmp_path).trials) == 2  # a failure counts: no endless resampling
    trials = {t.params["train.rl.kl_coef"]: t for t in study_of(tmp_path).trials}
    assert trials[0.05].state == TrialState.COMPLETE
    assert trials[0.5].state == TrialState.FAIL
    assert "boom" in trials[0.5].user_attrs["error"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    run = MlflowClient().get_run(trials[0.5].user_attrs["mlflow_run_ids"][0])
    assert run.info.status == "FAILED"
    assert run.data.tags["nla.state"] == "FAILED" and "boom" in run.data.tags["nla.error"]

    # after "fixing" the cause, --retry-failed queues the failed configuration once more
    assert main(["sweep", str(path), "-q", "--retry-failed"]) == 0
    trials = study_of(tmp_path).trials
    assert len(trials) == 3
    assert trials[2].params == {"train.rl.kl_coef": 0.5}
    failed = next(t for t in trials[:2] if t.state == TrialState.FAIL)
    assert trials[2].user_attrs["retry_of"] == failed.number
    assert main(["sweep", str(path), "-q"]) == 0  # nothing left to do: nothing new runs
    assert len(study_of(tmp_path).trials) == 3


def test_a_sweep_where_no_trial_finished_claims_no_best_config(
    tmp_path, tiny_model_dir, study_of, sweep_yaml, monkeypatch, capsys
):
    """Every trial failed: no best.yaml exists, so none is named; one line and exit 1."""

    def run_trial(cfg, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep_mod, "run_trial", run_trial)
    path = sweep_yaml(tmp_path, tiny_model_dir)
    assert main(["sweep", str(path), "-q"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("nla: error: study tiny-sweep: no trial finished (2 fail)")
    assert "RuntimeError: boom" in err and "--retry-failed" in err
    assert "best" not in captured.out and not (tmp_path / "sweep" / "best.yaml").exists()
    assert [t.state for t in study_of(tmp_path).trials] == [TrialState.FAIL] * 2


class PruneFromStepOne(optuna.pruners.BasePruner):
    """Prunes every trial once it has reported a value at step >= 1."""

    def prune(self, study, trial) -> bool:
        return max(trial.intermediate_values, default=-1) >= 1


def test_pruned_trials_are_pruned_in_optuna_and_tagged_in_mlflow(
    tmp_path, tiny_model_dir, monkeypatch, study_of, sweep_yaml
):
    monkeypatch.setattr(sweep_mod, "make_pruner", lambda sweep: PruneFromStepOne())
    path = sweep_yaml(tmp_path, tiny_model_dir, n_trials=1, pruner={"kind": "median"})
    assert main(["sweep", str(path), "-q"]) == 0
    (trial,) = study_of(tmp_path).trials
    assert trial.state == TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [0, 1]  # the warm start, then RL step 1
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    trial_run = client.get_run(trial.user_attrs["mlflow_run_ids"][0])
    assert trial_run.data.tags["nla.state"] == "PRUNED" and trial_run.info.status == "KILLED"
    exp = client.get_experiment_by_name("sweep-tests")
    (seed_run,) = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{trial_run.info.run_id}'"
    )
    assert seed_run.data.tags["nla.state"] == "PRUNED" and seed_run.info.status == "KILLED"
    (row,) = rows(study_of(tmp_path))  # compare shows it, with the value it was pruned at
    assert row.state == "PRUNED@1"
    assert row.stats["eval/roundtrip_fve"]["mean"] == trial.intermediate_values[1]


def test_median_and_hyperband_pruners_are_built_from_the_config(
    tmp_path, tiny_model_dir, sweep_yaml
):
    path = sweep_yaml(tmp_path, tiny_model_dir, pruner={"kind": "median", "n_warmup_steps": 3})
    pruner = sweep_mod.make_pruner(load_sweep(path))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    path = sweep_yaml(tmp_path, tiny_model_dir, pruner={"kind": "hyperband"})
    assert isinstance(sweep_mod.make_pruner(load_sweep(path)), optuna.pruners.HyperbandPruner)


def test_conditional_parameters_are_sampled_only_where_their_condition_holds(
    tmp_path, tiny_model_dir, sweep_yaml
):
    path = sweep_yaml(
        tmp_path,
        tiny_model_dir,
        space={
            "av.finetune": {"choices": ["full", "lora"]},
            "av.lora_r": {"type": "int", "low": 2, "high": 8, "when": {"av.finetune": "lora"}},
        },
    )
    sweep = load_sweep(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = sweep_mod.suggest(trial, sweep)
        assert ("av.lora_r" in params) == (params["av.finetune"] == "lora")
        seen.add(params["av.finetune"])
        study.tell(trial, 0.0)
    assert seen == {"full", "lora"}


def test_presets_set_several_keys_and_feed_when_conditions(tmp_path, tiny_model_dir, sweep_yaml):
    path = sweep_yaml(
        tmp_path,
        tiny_model_dir,
        space={
            "arm": {"presets": {"full": {}, "lora": {"av.finetune": "lora", "av.lora_r": 4}}},
            "av.lora_alpha": {"low": 4.0, "high": 8.0, "when": {"av.finetune": "lora"}},
        },
    )
    sweep = load_sweep(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(10):
        trial = study.ask()
        params = sweep_mod.suggest(trial, sweep)
        cfg = sweep.trial_config(params)
        lora = params["arm"] == "lora"
        assert (cfg.av.get("finetune") == "lora") == lora and ("av.lora_alpha" in params) == lora
        if lora:
            assert cfg.av["lora_r"] == 4 and cfg.av["lora_alpha"] == params["av.lora_alpha"]
        seen.add(params["arm"])
        study.tell(trial, 0.0)
    assert seen == {"full", "lora"}


def test_a_preset_with_an_unknown_key_fails_before_the_study(
    tmp_path, tiny_model_dir, capsys, sweep_yaml
):
    bad = {"arm": {"presets": {"ok": {}, "typo": {"av.finetun": "lora"}}}}
    path = sweep_yaml(tmp_path, tiny_model_dir, space=bad)
    assert main(["sweep", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert "search space arm='typo'" in err and "finetun" in err
    assert not (tmp_path / "sweep").exists()


def test_seed_spread_is_the_sample_standard_deviation():
    agg = aggregate({"0": {"m": 1.0}, "1": {"m": 3.0}, "2": {"m": 2.0, "x": 5.0}})
    assert agg["m"] == {"mean": 2.0, "std": 1.0, "n": 3.0}
    assert agg["x"] == {"mean": 5.0, "std": 0.0, "n": 1.0}


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "needle"),
    [
        ({"space": {"av.variant": {"choices": ["baseline", "nope"]}}}, "unknown av variant 'nope'"),
        ({"space": {"train.rl.klcoef": {"low": 0.1, "high": 1.0}}}, "train.rl.klcoef"),
        ({"space": {"av.bogus": {"choices": [1, 2]}}}, "av.bogus"),
        ({"space": {}}, "search space is empty"),
        ({"storage": "not a url"}, "storage URL is malformed"),
        ({"storage": "oracle://u:pw@localhost/db"}, "unsupported database"),
        (
            {"storage": "postgresql://nla:hunter2-secret@127.0.0.1:1/nla"},
            "cannot reach the study database",
        ),
        ({"objectives": [{"metric": "roundtrip"}]}, "not a trial metric"),
        (
            {"objectives": [{"metric": "eval/roundtrip_fve"}, {"metric": "eval/quote_rate"}]},
            "pruning needs a single objective",
        ),
        ({"n_trials": None}, "set n_trials or timeout_minutes"),
    ],
)
def test_bad_sweeps_fail_in_one_line_and_create_nothing(
    tmp_path, tiny_model_dir, capsys, top, needle, sweep_yaml
):
    path = sweep_yaml(tmp_path, tiny_model_dir, pruner={"kind": "median"}, **top)
    assert main(["sweep", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "fix:" in err
    assert "hunter2" not in err
    assert not (tmp_path / "sweep").exists()


def test_an_unwritable_sweep_directory_fails_in_one_line(
    tmp_path, tiny_model_dir, capsys, sweep_yaml
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = sweep_yaml(tmp_path, tiny_model_dir, directory=str(blocker / "sweep"))
    assert main(["sweep", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not writable" in err and len(err.splitlines()) == 1


def test_a_changed_sweep_under_the_same_name_is_refused(
    tmp_path, tiny_model_dir, capsys, sweep_yaml
):
    sweep = load_sweep(sweep_yaml(tmp_path, tiny_model_dir))
    SweepRunner(sweep)._open()  # the study exists with the first space
    changed = sweep_yaml(tmp_path, tiny_model_dir, space={"train.rl.temperature": {"choices": [1]}})
    assert main(["sweep", str(changed), "-q"]) == 2
    assert "different sweep config" in capsys.readouterr().err


# -- compare on a synthetic study ---------------------------------------------------------------


def test_compare_on_a_synthetic_study(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="synthetic", storage=storage, direction="maximize")
    study.set_user_attr("objectives", [{"metric": "eval/roundtrip_fve", "direction": "maximize"}])
    study.set_user_attr("report", ["eval/roundtrip_fve", "eval/quote_rate"])
    dist = {"av.variant": optuna.distributions.CategoricalDistribution(["baseline", "multi"])}
    for variant, fves in [("baseline", [0.1, 0.2]), ("multi", [0.4, 0.6, 0.5])]:
        per_seed = {
            str(i): {"eval/roundtrip_fve": v, "eval/quote_rate": 0.1} for i, v in enumerate(fves)
        }
        study.add_trial(
            optuna.trial.create_trial(
                params={"av.variant": variant},
                distributions=dist,
                value=sum(fves) / len(fves),
                user_attrs={
                    "seed_metrics": per_seed,
                    "variants": {"av": variant, "ar": "baseline"},
                },
            )
        )
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(
            {"name": "synthetic", "local": True, "storage": storage, "parent_run_id": None}
        )
    )
    table = rows(study)
    assert [r.variant for r in table] == ["multi/baseline", "baseline/baseline"]
    assert table[0].stats["eval/roundtrip_fve"] == pytest.approx({"mean": 0.5, "std": 0.1, "n": 3})
    csv_lines = to_csv(table, ["eval/roundtrip_fve"]).splitlines()
    head = csv_lines[0].split(",")
    first = dict(zip(head, csv_lines[1].split(","), strict=True))
    assert (first["eval/roundtrip_fve.mean"], first["eval/roundtrip_fve.std"]) == ("0.5", "0.1")
    # a study from before the per-row files: intervals from seeds alone, and it says so
    assert main(["compare", str(tmp_path), "--reference", "baseline", "--resolve", "0.1"]) == 0
    out = capsys.readouterr().out
    assert out.index("0.500") < out.index("0.150")  # best first
    half = 4.302653 * 0.1 / 3**0.5  # t(2) over the three seeds of "multi"
    assert f"[{0.5 - half:.3f}," in out and "from seeds alone" in out
    assert "minus baseline" in out and "+0.350" in out  # seeds 0 and 1 paired: 0.4-0.1, 0.6-0.2
    assert "unresolved" in out  # two paired seeds, 0.3 and 0.4 apart: t(1) is wide
    assert "0.1 needs" in out and "seeds" in out.split("0.1 needs")[1].split("\n")[0]
    report = tmp_path / "report"
    assert "from seeds alone" in (report / "comparison.md").read_text()
    assert (report / "plots" / "estimate_roundtrip_fve.png").is_file()
    assert main(["compare", str(tmp_path), "--reference", "nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reference nothing" in err[0] and "baseline" in err[0]
    assert main(["compare", str(tmp_path), "--resolve", "-1"]) == 2


# -- resume after a real kill -------------------------------------------------------------------


@pytest.mark.integration
def test_a_killed_sweep_resumes_without_losing_or_repeating_trials(
    tmp_path, tiny_model_dir, study_of, sweep_yaml
):
    path = sweep_yaml(tmp_path, tiny_model_dir, n_trials=3)
    cmd = [sys.executable, "-m", "nla_variants.cli", "sweep", str(path), "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    completed_before: dict[int, tuple] = {}
    while True:  # no wall-clock deadline: a busy machine is slow, not wrong (pytest-timeout)
        time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()  # a dead sweep fails, never hangs
        if not (tmp_path / "sweep" / "sweep.yaml").is_file():  # the study exists once this does
            continue
        try:
            trials = study_of(tmp_path).trials
        except Exception:  # the study is still being created
            continue
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        # killed once it has its configuration and its MLflow run: a fast machine got here
        # between a trial's start and its first suggestion, and that trial has nothing to retry
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and t.params and t.user_attrs.get("mlflow_run_ids")
        ]
        if done and running:
            completed_before = {t.number: (t.params, t.values) for t in done}
            break
    assert completed_before, "the sweep never had a finished and a running trial"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert main(["sweep", str(path), "-q"]) == 0
    trials = study_of(tmp_path).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3
    assert len({t.number for t in trials}) == len(trials)
    assert len({str(t.params) for t in done}) == 3  # distinct configurations: none replayed
    for number, (params, values) in completed_before.items():
        assert (trials[number].params, trials[number].values) == (params, values)
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(killed) == 1
    retry = [t for t in done if t.user_attrs.get("retry_of") == killed[0].number]
    assert retry and retry[0].params == killed[0].params
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    stale = MlflowClient().get_run(killed[0].user_attrs["mlflow_run_ids"][0])
    assert stale.info.status == "KILLED" and stale.data.tags["nla.state"] == "INTERRUPTED"


def test_two_objectives_give_a_pareto_front_export_and_plot(
    tmp_path, tiny_model_dir, study_of, sweep_yaml
):
    path = sweep_yaml(
        tmp_path,
        tiny_model_dir,
        objectives=[
            {"metric": "eval/roundtrip_fve", "direction": "maximize"},
            {"metric": "eval/quote_rate", "direction": "minimize"},
        ],
        pruner={"kind": "none"},
    )
    assert main(["sweep", str(path), "-q"]) == 0
    study = study_of(tmp_path)
    assert [len(t.values) for t in study.trials] == [2, 2]
    front = {t.number for t in study.best_trials}
    exported = {int(p.stem.split("-")[1]) for p in (tmp_path / "sweep" / "pareto").glob("*.yaml")}
    assert exported == front
    assert (tmp_path / "sweep" / "best.yaml").is_file()
    plots = tmp_path / "sweep" / "report" / "plots"
    assert (plots / "pareto_front.png").is_file()
    assert (plots / "optimization_history_1.png").is_file()
