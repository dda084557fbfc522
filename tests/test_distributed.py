"""Two `nla sweep` workers share one study on a real PostgreSQL server (and one MLflow database):
N trials in total, no duplicate trial numbers, no lost results. `.ci/run` starts the server
(`.ci/postgres`) and sets NLA_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
N_TRIALS = 4


@pytest.fixture
def databases():
    admin = os.environ.get("NLA_TEST_POSTGRES_URL")
    if not admin:
        if os.environ.get("NLA_REQUIRE_POSTGRES") == "1":
            pytest.fail("NLA_REQUIRE_POSTGRES=1 but NLA_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server: run .ci/postgres and export NLA_TEST_POSTGRES_URL")
    import psycopg

    base = make_url(admin)
    names = [f"nla_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("study", "mlflow")]
    plain = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield [base.set(database=n).render_as_string(hide_password=False) for n in names]
    with psycopg.connect(plain, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_workers_share_one_study(tmp_path, tiny_model_dir, databases, sweep_yaml):

    study_url, mlflow_url = databases
    MlflowClient(mlflow_url).search_experiments()  # the tracking server's schema, made once
    path = sweep_yaml(
        tmp_path,
        tiny_model_dir,
        n_trials=N_TRIALS,
        storage=study_url,
        mlflow={"tracking_uri": mlflow_url, "experiment": "distributed"},
        **{"trial": {"train": {"rl": {"steps": 0}}}},
    )
    cmd = [sys.executable, "-m", "nla_variants.cli", "sweep", str(path), "-q"]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "OMP_NUM_THREADS": "1",  # two workers on a small machine
    }
    workers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [w.communicate() for w in workers]  # pytest-timeout bounds a hang
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err.decode()[-2000:]

    study = optuna.load_study(study_name="tiny-sweep", storage=study_url)
    # two workers that both saw one trial left: the later one stops as surplus (pruned)
    trials = [t for t in study.trials if not t.user_attrs.get("surplus")]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    errors = [t.user_attrs.get("error") for t in trials if t.state != TrialState.COMPLETE]
    assert len(done) == len(trials) == N_TRIALS, errors
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers ran trials
    for t in done:
        (metrics,) = t.user_attrs["seed_metrics"].values()
        assert t.values[0] == pytest.approx(metrics["eval/roundtrip_fve"])

    mlflow.set_tracking_uri(mlflow_url)
    client = MlflowClient()
    exp = client.get_experiment_by_name("distributed")
    runs = client.search_runs([exp.experiment_id], max_results=200)
    parents = [r for r in runs if r.data.tags.get("sweep.parent") == "tiny-sweep"]
    assert len(parents) == 1
    trial_runs = [r for r in runs if r.data.tags.get("nla.role") == "trial"]
    assert sorted(int(r.data.tags["sweep.trial"]) for r in trial_runs) == sorted(numbers)
    assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == {parents[0].info.run_id}
    seed_runs = [
        r for r in runs if r.data.tags.get("sweep.seed") is not None and r not in trial_runs
    ]
    assert len([r for r in seed_runs if r.data.tags.get("nla.role") != "trial"]) == N_TRIALS
