"""A trial's learning curves against wall minutes, from its own MLflow record.

Why from MLflow: every figure a trial reports during training is already logged there with a
timestamp (the AV warm start's held-out NLL gap, RL's periodic evaluations), so the picture needs
no bookkeeping of its own and can be drawn again for any finished run. It shows what the recipe
question asks: where the round trip stands against the text-only prompt and the shuffled control
as training goes on, and whether (and when) it crosses the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

# (metric key suffix, label) of each line; the first panel is the NLL gap, the second the FVEs
NLL = (("val/nll_gap", "AV warm start: held-out NLL gap"), ("rl/eval/av_nll_gap", "RL: NLL gap"))
FVE = (
    ("rl/eval/roundtrip_fve", "round trip (the NLA)"),
    ("rl/eval/prompt_fve", "text-only prompt"),
    ("rl/eval/roundtrip_shuffled_fve", "shuffled control"),
)
BAND = ("rl/eval/beats_prompt_low", "rl/eval/beats_prompt_high")


@dataclass
class Curves:
    """Each line's points as (wall minutes since the run started, value), by metric key."""

    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def line(self, suffix: str) -> list[tuple[float, float]]:
        """The points of the first logged key ending in `suffix` (Lightning prefixes a stage's
        keys with its name), in time order."""
        for key, pts in self.points.items():
            if key == suffix or key.endswith(suffix):
                return sorted(pts)
        return []

    def crossing(self) -> float | None:
        """The first minute at which the round trip's paired interval against the prompt lies
        above zero, or None."""
        lows = dict(self.line(BAND[0]))
        return next((t for t, v in sorted(lows.items()) if v > 0), None)


def read_curves(client: MlflowClient, run_id: str) -> Curves:
    """The run's logged histories of every curve metric."""
    run = client.get_run(run_id)
    start = run.info.start_time
    wanted = [s for s, _ in (*NLL, *FVE)] + list(BAND)
    curves = Curves()
    for key in run.data.metrics:
        if any(key == s or key.endswith(s) for s in wanted):
            history = client.get_metric_history(run_id, key)
            curves.points[key] = [((m.timestamp - start) / 60000.0, m.value) for m in history]
    return curves


def plot_curves(curves: Curves, title: str) -> Figure | None:
    """Two panels against wall minutes: the NLL gap (warm start and RL), and the round trip
    beside the prompt and the shuffled control (RL evaluations, the first at RL's start), with
    the minute the round trip first beats the prompt marked. None when nothing was logged."""
    if not any(curves.line(s) for s, _ in (*NLL, *FVE)):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True)
    for suffix, label in NLL:
        pts = curves.line(suffix)
        if pts:
            top.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
    top.set_ylabel("NLL gap (nats/token)")
    top.legend(fontsize=8)
    for suffix, label in FVE:
        pts = curves.line(suffix)
        if pts:
            bottom.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
    rt, lo, hi = (dict(curves.line(s)) for s in (FVE[0][0], *BAND))
    prompt = dict(curves.line(FVE[1][0]))
    shared = sorted(set(rt) & set(lo) & set(hi) & set(prompt))
    if shared:  # the paired interval of round trip minus prompt, drawn around the prompt line
        bottom.fill_between(
            shared,
            [prompt[t] + lo[t] for t in shared],
            [prompt[t] + hi[t] for t in shared],
            alpha=0.2,
            label="round trip, paired 95% interval",
        )
    cross = curves.crossing()
    if cross is not None:
        bottom.axvline(cross, color="grey", ls="--", lw=1, label=f"beats the prompt at {cross:.0f}")
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set_ylabel("FVE (eval rows)")
    bottom.set_xlabel("wall minutes since the run started")
    bottom.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
