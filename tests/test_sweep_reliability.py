"""Sweeps under failure: a killed worker, two workers at once, a full disk, and secrets in URL
settings. The sampling tests use instant stand-in trials (tests/sweep_worker.py) on a real
study database; the disk and secrets tests run real trials on the tiny model."""

from __future__ import annotations

import errno
import logging
import os
import re
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
from sweep_worker import fake_run_trial

from nla_variants.cli import main
from nla_variants.sweeps import runner as sweep_mod
from nla_variants.sweeps.spec import load_sweep
from nla_variants.training import checkpoint

WORKER = Path(__file__).parent / "sweep_worker.py"


@pytest.fixture
def fake_sweep(sweep_yaml):
    """`fake_sweep(tmp, model_dir, **top)`: `sweep_yaml` with a seeded random sampler."""

    def write(tmp: Path, model_dir: Path, **top) -> Path:
        return sweep_yaml(tmp, model_dir, **{"sampler": {"kind": "random", "seed": 0}, **top})

    return write


def worker(path: Path, markers: Path, **env: str) -> subprocess.Popen:
    env = {**os.environ, "NLA_TEST_MARKERS": str(markers), **env}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(marker: Path, proc: subprocess.Popen) -> None:
    while not marker.exists():  # no wall-clock budget: pytest's timeout bounds a hang
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)


def error_line(capsys) -> str:
    """The one line the CLI printed (MLflow may add its own INFO lines on first use)."""
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("nla:")]
    return line


def configurations(study: optuna.Study) -> list[tuple]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [tuple(sorted(t.params.items())) for t in done]


def mlflow_runs(tmp: Path, experiment: str = "sweep-tests") -> list:
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=500)


# -- sampling ------------------------------------------------------------------------------------


def test_one_uninterrupted_run_is_reproducible(
    tmp_path, tiny_model_dir, monkeypatch, study_of, fake_sweep
):
    monkeypatch.setattr(sweep_mod, "run_trial", fake_run_trial)
    seen = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        path = fake_sweep(tmp_path / name, tiny_model_dir, n_trials=4)
        assert main(["sweep", str(path), "-q"]) == 0
        seen.append([t.params for t in study_of(tmp_path / name).trials])
    assert seen[0] == seen[1] and len({str(p) for p in seen[0]}) == 4


def test_a_second_invocation_does_not_replay_the_first(
    tmp_path, tiny_model_dir, monkeypatch, study_of, fake_sweep
):
    """Two processes asking for 2 trials each used to evaluate the same 2 configurations."""
    monkeypatch.setattr(sweep_mod, "run_trial", fake_run_trial)
    assert main(["sweep", str(fake_sweep(tmp_path, tiny_model_dir, n_trials=2)), "-q"]) == 0
    assert main(["sweep", str(fake_sweep(tmp_path, tiny_model_dir, n_trials=4)), "-q"]) == 0
    done = configurations(study_of(tmp_path))
    assert len(done) == len(set(done)) == 4


def test_a_sweep_prints_one_line_per_trial_stage(
    tmp_path, tiny_model_dir, monkeypatch, caplog, fake_sweep
):
    """trial i/n, seed, the stage and the clock; a line when each seed run finishes."""
    monkeypatch.setattr(sweep_mod, "run_trial", fake_run_trial)  # its one stage: evaluation
    caplog.set_level(logging.INFO, logger=sweep_mod.__name__)
    path = fake_sweep(tmp_path, tiny_model_dir, n_trials=2, seeds=2)
    sweep_mod.SweepRunner(load_sweep(path), progress=False).run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    assert [line.split(" (")[0] for line in lines] == [
        f"trial {i}/2, seed {seed}: {stage}"
        for i in (1, 2)
        for seed in (0, 1)
        for stage in ("evaluation", "finished")
    ]
    assert re.fullmatch(r".*\(\d+s elapsed, no estimate yet\)", lines[0])
    assert re.fullmatch(r".*\(\d+s elapsed, about \d+s left\)", lines[1])
    assert lines[-1].endswith(", about 0s left)")


def test_a_killed_sweep_resumes_without_repeats_and_closes_its_mlflow_runs(
    tmp_path, tiny_model_dir, monkeypatch, study_of, fake_sweep
):
    path = fake_sweep(tmp_path, tiny_model_dir, n_trials=4)
    proc = worker(path, tmp_path, NLA_TEST_HANG_TRIAL="2")
    wait_for(tmp_path / "hang-2", proc)  # trials 0 and 1 finished, trial 2 inside its seed run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.params for t in study_of(tmp_path).trials if t.state.is_finished()}
    left_open = {
        (r.data.tags.get("sweep.trial"), "sweep.seed" in r.data.tags)
        for r in mlflow_runs(tmp_path)
        if r.info.status == "RUNNING"
    }
    assert {("2", False), ("2", True)} <= left_open  # the trial's run and its seed run

    monkeypatch.setattr(sweep_mod, "run_trial", fake_run_trial)
    assert main(["sweep", str(path), "-q"]) == 0
    study = study_of(tmp_path)
    done = configurations(study)
    assert len(done) == len(set(done)) == 4  # the resumed process drew new configurations
    for number, params in before.items():
        assert study.trials[number].params == params
    (killed,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert killed.number == 2
    (retry,) = [t for t in study.trials if t.user_attrs.get("retry_of") == 2]
    assert retry.params == killed.params and retry.state == TrialState.COMPLETE

    runs = mlflow_runs(tmp_path)
    of_killed = [r for r in runs if r.data.tags.get("sweep.trial") == "2"]
    assert len(of_killed) == 2  # the trial run and its seed run
    for r in of_killed:
        assert (r.info.status, r.data.tags["nla.state"]) == ("KILLED", "INTERRUPTED")
    for r in runs:
        if r.data.tags.get("sweep.parent") is None:
            assert r.info.status != "RUNNING" and r.data.tags["nla.state"] != "RUNNING"


def test_runs_a_dead_process_left_open_are_closed_whatever_mlflow_recorded(
    tmp_path, tiny_model_dir, monkeypatch, fake_sweep
):
    """A seed run MLflow itself ended at exit (FINISHED) while ours still said RUNNING."""
    monkeypatch.setattr(sweep_mod, "run_trial", fake_run_trial)
    path = fake_sweep(tmp_path, tiny_model_dir, n_trials=1)
    runner = sweep_mod.SweepRunner(load_sweep(path), progress=False)
    runner.run()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (seed_run,) = [r for r in mlflow_runs(tmp_path) if r.data.tags.get("sweep.seed")]
    client.set_tag(seed_run.info.run_id, "nla.state", "RUNNING")  # FINISHED, state RUNNING
    runner._close_open_runs(0)
    closed = client.get_run(seed_run.info.run_id)
    assert (closed.info.status, closed.data.tags["nla.state"]) == ("KILLED", "INTERRUPTED")


def test_two_workers_at_once_draw_different_configurations(tmp_path, tiny_model_dir, fake_sweep):
    """Both workers sit inside their first trial at the same time (a rendezvous), so each
    sampled it before seeing the other's: with one shared seed they drew the same one."""
    path = fake_sweep(
        tmp_path, tiny_model_dir, n_trials=6, storage=f"sqlite:///{tmp_path / 'study.db'}"
    )
    MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()  # schema made once
    workers = [worker(path, tmp_path, NLA_TEST_RENDEZVOUS="2") for _ in range(2)]
    for w in workers:
        _, err = w.communicate()
        assert w.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="tiny-sweep", storage=f"sqlite:///{tmp_path}/study.db")
    done = configurations(study)
    assert len(done) == len(set(done)) == 6
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2


# -- a full disk ---------------------------------------------------------------------------------


def fail_ar_warm_start_writes(monkeypatch) -> None:
    """The disk fills while the AR warm start is written (after the AV's was kept)."""
    real = checkpoint.save_file

    def save_file(tensors, path, *args, **kwargs):
        if Path(path).parent.name.startswith(".ar-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)


def test_a_full_disk_during_a_sweep_stops_it_in_one_line_and_a_rerun_loses_nothing(
    tmp_path, tiny_model_dir, capsys, study_of, sweep_yaml
):
    path = sweep_yaml(tmp_path, tiny_model_dir, n_trials=2, trial={"train": {"rl": {"steps": 0}}})
    with pytest.MonkeyPatch.context() as mp:
        fail_ar_warm_start_writes(mp)
        assert main(["sweep", str(path), "-q"]) == 2
    err = error_line(capsys)
    assert err.startswith("nla: error: no space left on the device while writing ")
    assert f"{tmp_path}/warm_starts/ar-" in err and "rerun" in err
    assert not list((tmp_path / "warm_starts").glob(".*"))  # no half-written checkpoint
    study = study_of(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]

    assert main(["sweep", str(path), "-q"]) == 0  # space freed: the same command continues
    study = study_of(tmp_path)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 2
    retry = next(t for t in done if t.user_attrs.get("retry_of") == 0)
    assert retry.params == study.trials[0].params
    assert retry.user_attrs["seed_metrics"]["0"]["av_sft/cache_hit"] == 1.0  # AV kept


def test_a_full_disk_during_a_warm_start_is_one_line_and_a_rerun_continues(
    tmp_path, tiny_model_dir, capsys, trial_config
):

    path = trial_config(tmp_path, tiny_model_dir, **{"mlflow.log_checkpoints": False})
    with pytest.MonkeyPatch.context() as mp:
        fail_ar_warm_start_writes(mp)
        assert main(["train", str(path), "-q"]) == 2
    err = error_line(capsys)
    assert "no space left on the device while writing" in err
    assert f"{tmp_path}/warm_starts/ar-" in err
    assert not list((tmp_path / "warm_starts").glob(".*"))
    (failed,) = mlflow_runs(tmp_path, "tests")
    assert failed.info.status == "FAILED" and "no space left" in failed.data.tags["nla.error"]

    assert main(["train", str(path), "-q"]) == 0
    runs = mlflow_runs(tmp_path, "tests")
    ok = next(r for r in runs if r.info.status == "FINISHED")
    assert ok.data.metrics["av_sft/cache_hit"] == 1.0  # the AV warm start was not lost
    assert sorted(p.name[:3] for p in (tmp_path / "warm_starts").iterdir()) == ["ar-", "av-"]


# -- secrets -------------------------------------------------------------------------------------

SECRETS = {
    "storage": "pw-storage-4b1d",
    "tracking": "pw-tracking-90ae",
    "teacher": "pw-teacher-c37f",
}


def test_no_password_of_a_url_setting_reaches_disk_mlflow_or_logs(
    tmp_path, tiny_model_dir, monkeypatch, capsys, caplog, sweep_yaml
):
    """A password in `storage:`, `mlflow.tracking_uri` and the teacher's `base_url`: grep
    everything the sweep wrote (study and MLflow databases, artifacts, state, best.yaml, run
    dirs, datasets) and everything it printed or logged."""
    import logging

    caplog.set_level(logging.INFO)
    monkeypatch.chdir(tmp_path)  # MLflow's artifact root (./mlruns) lands in tmp_path too
    sqlite = "sqlite:///file:{}?mode=rwc&password={}&uri=true"  # sqlite ignores the password
    tracking = sqlite.format(tmp_path / "mlflow.db", SECRETS["tracking"])
    path = sweep_yaml(
        tmp_path,
        tiny_model_dir,
        n_trials=1,
        storage=sqlite.format(tmp_path / "study.db", SECRETS["storage"]),
        mlflow={"tracking_uri": tracking, "experiment": "secrets"},
        trial={
            "train": {"rl": {"steps": 0}},
            "data": {"teacher": {"anthropic": {"base_url": f"http://nla:{SECRETS['teacher']}@h/"}}},
        },
    )
    inputs = {path, tmp_path / "trial.yaml"}
    assert main(["sweep", str(path)]) == 0
    assert main(["compare", str(path)]) == 0  # reads the study, logs the report to MLflow
    printed = capsys.readouterr()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in inputs]
    assert any(p.name == "mlflow.db" for p in written) and any(p.suffix == ".yaml" for p in written)
    for secret in SECRETS.values():
        for p in written:
            assert secret.encode() not in p.read_bytes(), p
        assert secret not in printed.out + printed.err + caplog.text

    # the settings did reach each place, masked
    state = yaml.safe_load((tmp_path / "sweep" / "sweep.yaml").read_text())
    assert "password=***" in state["tracking_uri"] and "password=***" in state["storage"]
    mlflow.set_tracking_uri(tracking)
    client = MlflowClient()
    exp = client.get_experiment_by_name("secrets")
    (seed_run,) = client.search_runs([exp.experiment_id], "tags.`sweep.seed` = '0'")
    params = seed_run.data.params
    assert "password=***" in params["mlflow.tracking_uri"]
    assert params["data.teacher.anthropic.base_url"] == "http://nla:***@h/"
    best = yaml.safe_load((tmp_path / "sweep" / "best.yaml").read_text())
    assert best["data"]["teacher"]["anthropic"]["base_url"] == "http://nla:***@h/"
