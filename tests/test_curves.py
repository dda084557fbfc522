"""A trial's learning curves, read back from a real MLflow store and drawn (training/curves.py)."""

import mlflow
import pytest

from nla_variants.training.curves import Curves, plot_curves, read_curves


def test_curves_are_read_from_the_runs_history_against_wall_minutes(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("curves")
    run = client.create_run(exp, start_time=1_000_000)
    rid = run.info.run_id
    for minute, value in [(1, 0.10), (3, 0.20)]:
        client.log_metric(rid, "av_sft-val/nll_gap", value, timestamp=1_000_000 + minute * 60000)
    for step, minute in enumerate((5, 8)):
        t = 1_000_000 + minute * 60000
        client.log_metric(rid, "rl/eval/roundtrip_fve", 0.2 + 0.1 * step, t, step)
        client.log_metric(rid, "rl/eval/prompt_fve", 0.25, t, step)
        client.log_metric(rid, "rl/eval/beats_prompt_low", -0.1 + 0.15 * step, t, step)
        client.log_metric(rid, "rl/eval/beats_prompt_high", 0.1 + 0.15 * step, t, step)
    client.log_metric(rid, "eval/roundtrip_fve", 0.3)  # the final score: not a curve
    curves = read_curves(client, rid)
    assert curves.line("val/nll_gap") == [(1.0, 0.10), (3.0, 0.20)]  # a stage's prefixed key
    assert curves.line("rl/eval/roundtrip_fve") == [(5.0, 0.2), (8.0, pytest.approx(0.3))]
    assert curves.line("eval/roundtrip_shuffled_fve") == []
    assert "eval/roundtrip_fve" not in curves.points
    assert curves.crossing() == 8.0  # the first evaluation whose paired interval is above 0
    fig = plot_curves(curves, "a trial")
    assert fig is not None and len(fig.axes) == 2
    assert any("beats the prompt at 8" in t.get_text() for t in fig.axes[1].get_legend().texts)


def test_no_crossing_and_nothing_to_draw():
    curves = Curves({"rl/eval/beats_prompt_low": [(1.0, -0.2), (2.0, -0.01)]})
    assert curves.crossing() is None
    assert plot_curves(curves, "empty") is None  # no NLL gap or FVE line was logged
