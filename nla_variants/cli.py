"""The `nla` command. Every user error is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from nla_variants import __version__
from nla_variants.errors import DiskFull, NLAError, is_disk_full
from nla_variants.masking import MaskingFilter, mask

log = logging.getLogger("nla_variants")


def _setup_logging(quiet: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(
        console=Console(stderr=True), show_time=False, show_path=False, markup=False
    )
    handler.addFilter(MaskingFilter())  # no password of a URL setting ever reaches a log line
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, handlers=[handler], format="%(message)s"
    )
    for noisy in ("transformers", "httpx", "datasets", "filelock", "lightning", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-call "Loading weights" bars are noise here


def _cmd_prepare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from nla_variants.config import PrepareConfig, load_config
    from nla_variants.data.prepare import prepare

    cfg = load_config(args.config, PrepareConfig, args.set)
    result = prepare(cfg, progress=not args.quiet)
    side = result.sidecar
    console = Console(stderr=False)
    status = "cache hit (already complete)" if result.cache_hit else "built"
    console.print(f"dataset {status}: {result.path}")
    table = Table("split", "rows", "documents", "explained")
    for split, c in side["splits"].items():
        table.add_row(split, str(c["rows"]), str(c["documents"]), str(c["explained"]))
    console.print(table)
    tp = side.get("throughput", {})
    if not result.cache_hit and tp.get("tokens_per_s"):
        console.print(
            f"extracted {tp['tokens']} tokens at {tp['tokens_per_s']:.0f} tok/s; "
            f"teacher dropped {side['counts']['dropped']} of {side['counts']['teacher_rows']}"
        )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from nla_variants.config import TrialConfig, load_config
    from nla_variants.experiment import run_trial

    cfg = load_config(args.config, TrialConfig, args.set)
    metrics = run_trial(cfg, progress=not args.quiet)
    table = Table("metric", "value", title=f"trial {cfg.name} (MLflow run {metrics['run_id']})")
    for key, value in metrics.items():
        if key != "run_id":
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    return 0


def _print_comparison(study, sweep_dir, parent_run_id) -> None:
    from rich.console import Console

    from ablations.report import compare, rich_table

    table, metrics, files = compare(study, sweep_dir / "report", parent_run_id)
    console = Console()
    title = f"sweep {study.study_name}: best first"
    console.print(rich_table(table, metrics, title, width=console.width))
    console.print(f"written: {', '.join(str(p) for p in files.values())}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ablations.spec import load_sweep
    from ablations.sweep import SweepRunner

    sweep = load_sweep(args.config, args.set)
    runner = SweepRunner(sweep, progress=not args.quiet, retry_failed=args.retry_failed)
    study = runner.run()
    states = [t.state.name for t in study.trials]
    Console().print(
        f"study {study.study_name}: "
        + ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        + f"; best config: {runner.dir / 'best.yaml'}"
    )
    _print_comparison(study, runner.dir, runner.parent_id)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ablations.report import open_sweep

    study, sweep_dir, parent = open_sweep(args.sweep, args.storage)
    _print_comparison(study, sweep_dir, parent)
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from nla_variants.config import load_config
    from nla_variants.data.finetune import FinetuneConfig, finetune_target

    cfg = load_config(args.config, FinetuneConfig, args.set)
    result = finetune_target(cfg, progress=not args.quiet)
    meta = result.meta
    status = "cache hit (already trained)" if result.cache_hit else "trained"
    print(f"fine-tune {status}: {result.path}")
    print(
        f"{meta['steps']} steps on {meta['documents']} {meta['genre'] or 'all-genre'} documents,"
        f" loss {meta['loss_first']:.3f} -> {meta['loss_last']:.3f}"
    )
    print(f"use it as: --set target.diff_model={result.path}")
    return 0


def _add_config_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("config", help=f"YAML config, e.g. {example}")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted path, YAML value); repeatable",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line with a fix and exit code 2, like every error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fix = f"see `{self.prog} --help`"
        if message.startswith("unrecognized arguments: -"):
            fix = "set config keys with --set KEY=VALUE, e.g. --set target.layer=12; " + fix
        print(f"nla: error: {message} (fix: {fix})", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nla",
        description="Natural Language Autoencoder ablation platform.",
    )
    parser.add_argument("--version", action="version", version=f"nla_variants {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "prepare",
        help="build an activation dataset (corpus -> target activations -> teacher explanations)",
        description="Build (or find, if already complete) the content-addressed activation "
        "dataset a config describes. Safe to kill and rerun: it resumes.",
    )
    _add_config_args(p, "configs/quickstart.yaml")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        "train",
        help="one trial: warm-start the AV and AR, evaluate, log to MLflow",
        description="Run one trial (prepare data if needed, AV and AR warm start, held-out "
        "evaluation) and record it as an MLflow run.",
    )
    _add_config_args(p, "configs/train_baseline.yaml")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "finetune",
        help="briefly fine-tune the target on one genre (the second model for activation diffing)",
        description="Fine-tune a model for a few hundred steps on one corpus genre and save a "
        "content-addressed safetensors checkpoint (a rerun is a cache hit); use its path as "
        "target.diff_model in a prepare config.",
    )
    _add_config_args(p, "configs/finetune_narrative.yaml")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "sweep",
        help="an Optuna study over trial configs (resumable; several workers can share it)",
        description="Run (or continue) the Optuna study a sweep config describes: each trial is "
        "run_trial over k seeds, recorded in Optuna and as nested MLflow runs; ends with the "
        "comparison table. Kill it and rerun to resume.",
    )
    _add_config_args(p, "configs/sweeps/quickstart.yaml")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="queue every FAILED configuration again (after fixing the cause)",
    )
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "compare",
        help="a sweep's variant x metric table (CSV, Markdown, plots, logged to MLflow)",
        description="Tabulate a sweep (mean, spread and n over seeds, best first), write "
        "comparison.csv, comparison.md and plots under SWEEP_DIR/report.",
    )
    p.add_argument("sweep", help="the sweep config (YAML) or its directory (.nla/sweeps/NAME)")
    p.add_argument("--storage", help="the study database URL, for a shared-database sweep")
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        return args.func(args)
    except NLAError as e:
        print(f"nla: error: {' '.join(mask(str(e)).splitlines())}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk outside the atomic writers (MLflow, Lightning, sqlite)
        if not is_disk_full(e):
            raise
        print(f"nla: error: {mask(str(DiskFull(e.filename or 'the output')))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nla: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
