"""A sweep worker whose trials are instant stand-ins for `run_trial` (no model, no data), so the
sweep machinery (sampling, resume, several workers, MLflow records) is tested at full speed.

    python tests/sweep_worker.py SWEEP.yaml

Like run_trial, a stand-in opens a nested MLflow run tagged at creation and returns metrics
that depend only on the sampled configuration. Environment:
  NLA_TEST_HANG_TRIAL=N     trial N writes NLA_TEST_MARKERS/hang-N and sleeps until killed
  NLA_TEST_RENDEZVOUS=K     a process's first trial waits until K processes are inside a trial
                            (markers in NLA_TEST_MARKERS), so the workers truly overlap
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import mlflow

from nla_variants.config import TrialConfig

_started = False


def _rendezvous(markers: Path, count: int) -> None:
    global _started
    if _started:
        return
    _started = True
    (markers / f"in-trial-{os.getpid()}").touch()
    while len(list(markers.glob("in-trial-*"))) < count:  # the test's timeout bounds this
        time.sleep(0.05)


def fake_run_trial(
    cfg: TrialConfig,
    progress: bool = True,
    reporter: Any = None,
    tags: dict | None = None,
    on_stage: Any = None,
) -> dict[str, Any]:
    tags = tags or {}
    if on_stage is not None:  # like run_trial: each stage's name as it starts
        on_stage("evaluation")
    markers = Path(os.environ.get("NLA_TEST_MARKERS", "."))
    if os.environ.get("NLA_TEST_RENDEZVOUS"):
        _rendezvous(markers, int(os.environ["NLA_TEST_RENDEZVOUS"]))
    mlflow.set_experiment(cfg.mlflow.experiment)
    start_tags = {"nla.state": "RUNNING", **tags}
    with mlflow.start_run(run_name=cfg.name, nested=True, tags=start_tags) as run:
        if tags.get("sweep.trial") == os.environ.get("NLA_TEST_HANG_TRIAL"):
            (markers / f"hang-{tags['sweep.trial']}").touch()
            time.sleep(3600)  # killed here by the test
        kl = cfg.train.rl.kl_coef
        mlflow.set_tag("nla.state", "FINISHED")
        return {"eval/roundtrip_fve": -abs(math.log(kl / 0.03)), "run_id": run.info.run_id}


if __name__ == "__main__":
    from nla_variants.cli import main
    from nla_variants.sweeps import runner as sweep

    sweep.run_trial = fake_run_trial
    sys.exit(main(["sweep", *sys.argv[1:], "-q"]))
