"""What `nla explain` tells the user when it is done, and its MLflow record: the summary table on
stderr (stdout may carry the JSONL), and the outputs logged as artifacts of the NLA's run."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from nla_variants.checks import saved_tracking_uri
from nla_variants.common.errors import NLAError, one_line
from nla_variants.common.masking import mask
from nla_variants.explain.explain import ExplainResult, write_jsonl
from nla_variants.variants.pair import NLARef

ARTIFACT_DIR = "explain"


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def print_summary(result: ExplainResult, written: Sequence[Path]) -> None:
    """The set-level scores: real vs shuffled control, the text-only baseline, timings."""
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    table = Table(
        "", "cos", "FVE", title=f"{s['tokens']} tokens of {s['target']} layer {s['layer']}"
    )
    for name in ("real", "shuffled", "baseline"):
        if name in s:
            table.add_row(name, _fmt(s[name]["cos"]), _fmt(s[name]["fve"]))
    console = Console(stderr=True)
    console.print(table)
    wall = s["wall_s"]
    console.print(
        f"weights: {s['weights'] or 'final'}; tag failures {s['tag_failure_rate']:.3f}, "
        f"quote rate {s['quote_rate']:.3f}; {wall['total']:.1f} s (extract {wall['extract']:.1f},"
        f" generate {wall['generate']:.1f}, score {wall['score']:.1f})"
    )
    if written:
        console.print("written: " + ", ".join(str(p) for p in written))


def run_tracking_uri(ref: NLARef) -> str | None:
    """The tracking URI of the NLA's run as its config.yaml recorded it, ready to use: a `${VAR}`
    reference expanded (the secret stays in the environment). A password masked when the run was
    written cannot be used: an NLAError, which `nla explain --log-to-run` raises before any work."""
    return saved_tracking_uri(
        ref.detail["config"].mlflow.tracking_uri, f"{ref.path}/config.yaml: mlflow.tracking_uri"
    )


def log_to_run(ref: NLARef, result: ExplainResult, jsonl: Path | None, page: Path | None) -> None:
    """Log the JSONL (written to a temp file when it went to stdout) and the viewer under
    `explain/` in the NLA's MLflow run."""
    import mlflow

    uri = run_tracking_uri(ref)
    try:
        client = mlflow.MlflowClient(uri)
        with tempfile.TemporaryDirectory() as tmp:
            if jsonl is None:
                jsonl = Path(tmp) / "explanations.jsonl"
                write_jsonl(jsonl, result.records)
            for path in (jsonl, page):
                if path is not None:
                    client.log_artifact(ref.path.name, str(path), ARTIFACT_DIR)
    except Exception as e:  # the server, its credentials or the run: one line, secrets masked
        written = [str(p) for p in (jsonl, page) if p is not None and p.parent.exists()]
        kept = f"; the outputs are kept in {', '.join(written)}" if written else ""
        raise NLAError(
            f"--log-to-run: cannot log to run {ref.path.name} at {mask(uri or 'the default store')}"
            f" ({one_line(e)}){kept}",
            "check the tracking server, its credentials and that the run is in it",
        ) from None
