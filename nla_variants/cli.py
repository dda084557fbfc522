"""The `nla` command. Every user error is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path

from nla_variants import __version__
from nla_variants.common.errors import DiskFull, NLAError, is_disk_full
from nla_variants.common.masking import MaskingFilter, mask

log = logging.getLogger("nla_variants")


def setup_logging(quiet: bool, trains: bool = False) -> None:
    """The process's logging and warning filters. Only the `nla` command sets them: importing
    the library changes no global state. `trains`: the command runs Lightning, whose import
    sets its loggers to INFO, so it is imported first and then quietened."""
    import warnings

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
    if trains:
        import lightning.pytorch  # noqa: F401  (sets its loggers' levels: before ours)

        # Lightning's own INFO lines (accelerator banners, tips) drown the trial's output.
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        # RL keeps its frozen reference AV in eval mode on purpose; Lightning warns every trial.
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def _cmd_prepare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from nla_variants.checks import check_device
    from nla_variants.config import PrepareConfig, load_config
    from nla_variants.data.prepare import prepare
    from nla_variants.training.finetune import with_built_diff_model

    cfg = load_config(args.config, PrepareConfig, args.set)
    check_device(cfg.target.device, "target.device")
    cfg = with_built_diff_model(cfg)
    result = prepare(cfg, progress=not args.quiet)
    side = result.meta
    console = Console(stderr=False)
    status = "cache hit (already complete)" if result.cache_hit else "built"
    console.print(f"dataset {status}: {result.path}")
    table = Table("split", "rows", "documents", "explained")
    for split, c in side.splits.items():
        table.add_row(split, str(c.rows), str(c.documents), str(c.explained))
    console.print(table)
    tp = side.throughput
    if not result.cache_hit and tp.get("tokens_per_s"):
        console.print(
            f"extracted {tp['tokens']} tokens at {tp['tokens_per_s']:.0f} tok/s; "
            f"teacher dropped {side.counts['dropped']} of {side.counts['teacher_rows']}"
        )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from nla_variants.config import TrialConfig, load_config
    from nla_variants.training.experiment import run_trial

    cfg = load_config(args.config, TrialConfig, args.set)
    metrics = run_trial(cfg, progress=not args.quiet)
    table = Table("metric", "value", title=f"trial {cfg.name} (MLflow run {metrics['run_id']})")
    for key, value in metrics.items():
        if key != "run_id" and not _per_property(key):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    run_dir = Path(cfg.output_dir) / metrics["run_id"]
    Console().print(f"per-property faithfulness: the MLflow run, or nla evaluate {run_dir}")
    return 0


def _per_property(key: str) -> bool:
    """A per-property faithfulness metric (dozens of them): MLflow and `nla evaluate` show them as
    a table; the trial summary keeps the two means."""
    name = key.removeprefix("eval/")
    return name.startswith(("faithful_", "contradict_", "probe_")) and not name.endswith("_mean")


def _print_comparison(
    study,
    sweep_dir,
    parent_run_id,
    reference: str | None = None,
    resolve: float | None = None,
    cross: bool = False,
    device: str | None = None,
) -> None:
    from rich.console import Console

    from nla_variants.sweeps.report import compare, power_lines, rich_table, versus_table

    table, metrics, files, found = compare(study, sweep_dir / "report", parent_run_id, reference)
    console = Console()
    title = f"sweep {study.study_name}: best first"
    console.print(rich_table(table, metrics, title, width=console.width))
    console.print(f"{found.note()}.")
    if found.reference is not None:
        console.print(versus_table(table, metrics, found.reference, width=console.width))
    for line in power_lines(found, metrics, resolve):
        console.print(line, highlight=False)
    if cross:
        from nla_variants.tools.cross import cross_read, print_tables, write_report

        crossed = cross_read(table, device)
        print_tables(crossed, console)
        files.update(write_report(crossed, sweep_dir / "report", parent_run_id))
    console.print(f"written: {', '.join(str(p) for p in files.values())}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nla_variants.sweeps.runner import SweepRunner
    from nla_variants.sweeps.spec import load_sweep

    sweep = load_sweep(args.config, args.set)
    runner = SweepRunner(sweep, progress=not args.quiet, retry_failed=args.retry_failed)
    study = runner.run()
    states = [t.state.name for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    if states and set(states) == {"FAIL"}:  # every trial failed: say why, claim no best.yaml
        print(f"nla: error: {_every_trial_failed(study, counts)}", file=sys.stderr)
        return 1
    best = runner.dir / "best.yaml"
    found = f"best config: {best}" if "COMPLETE" in states else "no trial finished: no best config"
    Console().print(f"study {study.study_name}: {counts}; {found}")
    _print_comparison(study, runner.dir, runner.parent_id)
    return 0


def _every_trial_failed(study, counts: str) -> str:
    """One line for a sweep whose trials all failed: the counts and the last trial's error."""
    failed = [t for t in study.trials if t.state.name == "FAIL" and t.user_attrs.get("error")]
    last = f"; trial {failed[-1].number}: {failed[-1].user_attrs['error']}" if failed else ""
    summary = f"study {study.study_name}: no trial finished ({counts}){last}"
    fix = (
        "fix the cause (each failed trial's error is also its MLflow run's nla.error tag), "
        "then rerun with --retry-failed"
    )
    return mask(f"{' '.join(summary.split())[:600]} (fix: {fix})")


def _cmd_compare(args: argparse.Namespace) -> int:
    from nla_variants.sweeps.report import open_sweep

    if args.resolve is not None and not (math.isfinite(args.resolve) and args.resolve > 0):
        raise NLAError(f"--resolve {args.resolve} is not a positive difference", "pass e.g. 0.02")
    if args.device and not args.cross:
        raise NLAError(
            f"--device {args.device} without --cross", "--device says where --cross runs"
        )
    if args.cross:
        from nla_variants.checks import check_device

        check_device(args.device, "--device")
    study, sweep_dir, parent = open_sweep(args.sweep, args.storage, args.tracking_uri)
    _print_comparison(
        study, sweep_dir, parent, args.reference, args.resolve, args.cross, args.device
    )
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from nla_variants.checks import check_device
    from nla_variants.config import load_config
    from nla_variants.training.finetune import FinetuneConfig, finetune_target

    cfg = load_config(args.config, FinetuneConfig, args.set)
    check_device(cfg.device, "device")
    result = finetune_target(cfg, progress=not args.quiet)
    meta = result.meta
    status = "cache hit (already trained)" if result.cache_hit else "trained"
    print(f"fine-tune {status}: {result.path}")
    print(
        f"{meta.steps} steps on {meta.documents} {meta.genre or 'all-genre'} documents,"
        f" loss {meta.loss_first:.3f} -> {meta.loss_last:.3f}"
    )
    print(f"use it as: --set target.diff_model={result.path}")
    return 0


def _output_path(path: str | None, flag: str) -> Path | None:
    """An output file whose directory exists or can be made; checked before any work."""
    from nla_variants.checks import check_writable_dir

    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise NLAError(f"{flag} {path} is a directory", f"give {flag} a file name")
    check_writable_dir(out.parent, f"{flag}'s directory")
    return out


def _cmd_explain(args: argparse.Namespace) -> int:
    from nla_variants.artifacts.loading import locate
    from nla_variants.checks import check_device
    from nla_variants.explain.explain import ExplainSettings, explain, read_inputs, write_jsonl
    from nla_variants.explain.report import log_to_run, print_summary, run_tracking_uri
    from nla_variants.explain.viewer import write_html

    check_device(args.device, "--device")
    inputs = read_inputs(args.text, args.file, args.jsonl, args.column)
    out, page = _output_path(args.out, "--out"), _output_path(args.html, "--html")
    ref = locate(args.nla, args.target)
    if args.log_to_run and ref.kind != "run":
        raise NLAError(
            f"--log-to-run: {args.nla} is an exported NLA, not a run", "pass a run or a sweep"
        )
    if args.log_to_run:
        run_tracking_uri(ref)  # a masked password or an unset ${VAR}: refused before any work
    settings = ExplainSettings(
        positions=args.positions,
        samples=args.samples,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        baseline=args.baseline,
        diff_model=args.diff_model,
        seed=args.seed,
        precision=args.precision,
        device=args.device,
    )
    result = explain(ref, inputs, settings, progress=not args.quiet)
    if out is not None:
        write_jsonl(out, result.records)
    if page is not None:
        write_html(page, result, f"nla explain: {Path(args.nla).name}")
    if out is None and page is None:
        for record in result.records:
            print(json.dumps(record, ensure_ascii=False))
    if args.log_to_run:
        log_to_run(ref, result, out, page)
    print_summary(result, [p for p in (out, page) if p is not None])
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nla_variants.checks import check_device
    from nla_variants.tools.evaluate_nla import (
        EvaluateSettings,
        evaluate_nla,
        print_report,
        write_report,
    )

    check_device(args.device, "--device")
    settings = EvaluateSettings(
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        precision=args.precision,
        device=args.device,
    )
    out = _output_path(args.out, "--out")
    # evaluate_nla checks the settings before any weight loads
    report, per_row = evaluate_nla(args.nla, settings, args.dataset, args.target)
    if out is not None:
        rows = write_report(out, report, per_row)
        log.info("report: %s; per-row scores: %s", out, rows)
    print_report(report)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from nla_variants.artifacts.loading import locate
    from nla_variants.auditing.audit import (
        AuditSettings,
        audit,
        log_mlflow,
        markdown,
        read_cases,
        resolve_organism,
        write_outputs,
    )
    from nla_variants.checks import check_device, check_tracking_uri, check_writable_dir

    check_device(args.device, "--device")
    if args.batch_size < 1 or args.response_tokens < 1:
        raise NLAError("--batch-size and --response-tokens must be at least 1", "pass e.g. 32")
    if args.max_new_tokens is not None and args.max_new_tokens < 8:
        raise NLAError("--max-new-tokens must be at least 8", "pass e.g. 96")
    if args.mlflow_experiment:
        check_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI"), "MLFLOW_TRACKING_URI")
    cases = read_cases(args.cases)
    organisms = [resolve_organism(o) for o in args.organism]
    judge = None
    if args.judge:  # the key and the API checked before anything loads
        from nla_variants.auditing.judge import make_judge

        judge = make_judge(args.judge, cases[0].kind)
    ref = locate(args.nla, args.target)  # audit() checks the organisms against it first
    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable_dir(out, "--out")
    settings = AuditSettings(
        diff=args.diff,
        response_tokens=args.response_tokens,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        precision=args.precision,
        device=args.device,
    )
    try:
        result = audit(ref, organisms, cases, settings, progress=not args.quiet, judge=judge)
    finally:
        if judge is not None:
            judge.close()
    written = write_outputs(out, result) if out is not None else []
    print(markdown(result))
    if args.mlflow_experiment:
        run_id = log_mlflow(result, written, args.mlflow_experiment)
        log.info("logged to MLflow experiment %s, run %s", args.mlflow_experiment, run_id)
    if written:
        log.info("written: %s", ", ".join(map(str, written)))
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from nla_variants.checks import check_device
    from nla_variants.common.io import write_text_atomic
    from nla_variants.tools.search import check_inputs, print_result, search

    check_inputs(args.query, args.k)
    check_device(args.device, "--device")
    out = _output_path(args.out, "--out")
    res = search(
        args.nla,
        args.query,
        args.dataset,
        k=args.k,
        split=args.split,
        device=args.device,
        target=args.target,
        precision=args.precision,
    )
    if out is not None:
        write_text_atomic(out, json.dumps(res.to_json(), indent=1, ensure_ascii=False) + "\n")
    print_result(res)
    return 0


def _cmd_steer(args: argparse.Namespace) -> int:
    from nla_variants.checks import check_device
    from nla_variants.common.io import write_text_atomic
    from nla_variants.tools.steer import (
        SteerSettings,
        check_settings,
        print_result,
        steer,
        write_html,
    )

    settings = SteerSettings(
        position=args.position,
        edit=args.edit,
        explanation=args.explanation,
        mode=args.mode,
        alpha=args.alpha,
        through=args.through,
        new_tokens=args.new_tokens,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        precision=args.precision,
        device=args.device,
    )
    check_settings(settings)
    check_device(args.device, "--device")
    out, page = _output_path(args.out, "--out"), _output_path(args.html, "--html")
    result = steer(args.nla, args.text, settings, args.target)
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if page is not None:
        write_html(page, result)
    print_result(result)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from nla_variants.artifacts.export import check_out_dir, export_nla
    from nla_variants.artifacts.loading import load, locate
    from nla_variants.artifacts.public_layout import export_public

    out = Path(args.out)
    if args.layout == "public" and args.lora == "adapter":  # before any weight loads
        raise NLAError("--lora adapter with --layout public", "the public layout merges LoRA")
    check_out_dir(out)
    nla = load(locate(args.nla, args.target), "cpu")
    if args.layout == "public":
        export_public(nla, out)
    else:
        export_nla(nla, out, lora=args.lora)
    print(f"exported {args.nla} ({nla.note or 'final weights'}) to {out} ({args.layout} layout)")
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


def _add_nla_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "nla", help="a run dir, a sweep (its dir or config), an exported or public-layout NLA"
    )
    p.add_argument("--target", help="read the target model from here (e.g. a local copy)")


def _add_compute_args(p: argparse.ArgumentParser) -> None:
    """Where and in what precision a command that runs models computes."""
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")


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
        "content-addressed safetensors checkpoint (a rerun is a cache hit); use its path, or "
        "finetune:CONFIG, as target.diff_model in a prepare config (prepare never trains).",
    )
    _add_config_args(p, "configs/finetune_narrative.yaml")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "sweep",
        help="an Optuna study over trial configs (resumable; several workers can share it)",
        description="Run (or continue) the Optuna study a sweep config describes: each trial is "
        "run_trial over k seeds, recorded in Optuna and as nested MLflow runs; prints one line "
        "per trial stage (trial i/n, seed, stage, elapsed, estimate for the rest) and ends with "
        "the comparison table. Kill it and rerun to resume. The studies: ablations/*.yaml.",
    )
    _add_config_args(p, "ablations/quickstart.yaml")
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
    p.add_argument(
        "--tracking-uri",
        help="the MLflow store the sweep logged to (default: the one it recorded), where the "
        "report is logged; without that store the report is written to files only",
    )
    p.add_argument(
        "--reference",
        metavar="PRESET",
        help="a preset name or trial number: each other preset's paired difference from it, its "
        "95%% interval and a Holm-corrected verdict (better, worse, unresolved)",
    )
    p.add_argument(
        "--resolve",
        type=float,
        metavar="DELTA",
        help="how many seeds or eval rows would resolve a true difference of DELTA",
    )
    p.add_argument(
        "--cross",
        action="store_true",
        help="also read every preset's AV explanations with every preset's AR (the "
        "cross-reconstruction matrix) and with its own AR after meaning-preserving rewrites "
        "(the perturbation battery): loads each finished trial's AR",
    )
    p.add_argument("--device", help="where --cross runs the ARs (default: the best available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "explain",
        help="explain every token of any text with a trained NLA (JSONL, HTML viewer)",
        description="Run the NLA's target over the text, have the AV explain the residual at "
        "every chosen token and the AR score each explanation (cosine, FVE) against the true "
        "vector and a shuffled control. Writes JSONL (--out, else stdout) and a self-contained "
        "HTML token viewer (--html).",
    )
    _add_nla_args(p)
    src = p.add_argument_group("text (one of)")
    src.add_argument("--text", help="the text itself")
    src.add_argument("--file", help="a UTF-8 text file")
    src.add_argument("--jsonl", help="a JSONL file, one text per row (with --column)")
    src.add_argument("--column", help="the JSONL field holding the text")
    p.add_argument("--positions", help="token indices and slices, e.g. 0,5,10:20,-1 (all)")
    p.add_argument("--samples", type=int, default=1, help="explanations per token (1)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    p.add_argument("--max-new-tokens", type=int, help="cap on explanation tokens (the AV's)")
    p.add_argument("--batch-size", type=int, default=64, help="vectors per AV batch (64)")
    p.add_argument(
        "--baseline",
        choices=("auto", "teacher", "none"),
        default="auto",
        help="the text-only baseline: the NLA's teacher on each prefix (auto: when offline-fast)",
    )
    p.add_argument("--diff-model", help="explain (this model - target) activations (diffing)")
    p.add_argument("--out", help="write the JSONL here (default: stdout, unless --html)")
    p.add_argument("--html", help="write the token viewer here (one self-contained file)")
    p.add_argument("--log-to-run", action="store_true", help="log the outputs to the run's MLflow")
    _add_compute_args(p)
    p.add_argument("--seed", type=int, default=0, help="sampling and shuffled-control seed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser(
        "evaluate",
        help="the held-out evaluation of a trained NLA, with faithfulness to ground truth",
        description="Score a trained NLA (a run, a sweep's best run, an export) on a dataset's "
        "eval split with the evaluation every trial runs: round-trip FVE and its controls, "
        "and per ground-truth property what the vector (a linear probe), the AV's explanations, "
        "the teacher's and other rows' explanations (chance) state. Trains nothing.",
    )
    _add_nla_args(p)
    p.add_argument("--dataset", help="a prepared dataset (default: the run's own)")
    p.add_argument(
        "--samples", type=int, default=256, help="eval rows scored, the trials' sample (256)"
    )
    p.add_argument("--max-new-tokens", type=int, help="explanation length cap (the run's)")
    p.add_argument("--batch-size", type=int, help="rows per batch (the run's)")
    p.add_argument("--seed", type=int, default=0, help="shuffled-control, sample and probe seed")
    _add_compute_args(p)
    p.add_argument("--out", help="also write the report (metrics, faithfulness table) as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "audit",
        help="does the NLA reveal a model organism's secret better than its transcript does?",
        description="Put every case prompt to every organism (a secret-word fine-tune of the "
        "NLA's target), explain its residual at the last prompt token with the NLA, and score how "
        "often the explanation names the secret, beside the transcript read by the NLA's "
        "text-only teacher, a linear probe on the same residuals, the shuffled control and "
        "chance, with 95% intervals; each organism is verified too (hint rate, never says the "
        "word). With --organism target and statement cases, the target reads true and false "
        "statements and the same readings are scored for truth; with genre fine-tunes and text "
        "cases, for naming the tuned genre. See docs/auditing.md.",
    )
    _add_nla_args(p)
    p.add_argument(
        "--organism",
        action="append",
        required=True,
        help="an organism config (configs/organism_gold.yaml, configs/finetune_narrative.yaml) "
        "or its checkpoint dir, repeated; or 'target' (the NLA's target itself) for statement "
        "cases",
    )
    p.add_argument(
        "--cases",
        required=True,
        help='a JSONL file: one {"prompt": ...} per line, {"statement": ..., "value": "true"} '
        'or {"text": ..., "genre": "code"} (configs/cases/)',
    )
    p.add_argument("--diff", action="store_true", help="read organism - base (a diff-data NLA)")
    p.add_argument(
        "--judge",
        metavar="MODEL",
        help="also ask a Claude model (e.g. claude-sonnet-4-6; needs ANTHROPIC_API_KEY) the "
        "audit's question about each transcript",
    )
    p.add_argument(
        "--response-tokens", type=int, default=40, help="the organism's answer or continuation (40)"
    )
    p.add_argument("--max-new-tokens", type=int, help="the AV's explanation cap (its own)")
    p.add_argument("--batch-size", type=int, default=32, help="rows per batch (32)")
    p.add_argument("--seed", type=int, default=0, help="shuffled-control and probe seed")
    _add_compute_args(p)
    p.add_argument("--out", help="write audit.json and audit.md into this directory")
    p.add_argument(
        "--mlflow-experiment",
        default="nla-audit",
        help="log the rates to this MLflow experiment ('' to skip; nla-audit)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs or progress bars")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser(
        "search",
        help="find the dataset activations a description points at (the AR as a query encoder)",
        description="The AR reconstructs the query; the dataset's activations nearest to it by "
        "cosine are listed with their prefixes and ground-truth properties. Where the query "
        "states a property the dataset knows (a genre, 'inside a list item', a last word), "
        "precision@k against it, beside its chance rate.",
    )
    _add_nla_args(p)
    p.add_argument("--query", required=True, help="the description, e.g. 'Python source code'")
    p.add_argument("--dataset", required=True, help="a prepared dataset of the NLA's target")
    p.add_argument("--k", type=int, default=50, help="hits to return (50)")
    p.add_argument("--split", help="search one split only (default: every row)")
    _add_compute_args(p)
    p.add_argument("--out", help="also write every hit and the precision as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    p.set_defaults(func=_cmd_search, quick_exit=True)

    p = sub.add_parser(
        "steer",
        help="steer the target by editing the AV's explanation of one of its activations",
        description="The AV explains the residual at --position; the edited explanation goes "
        "through the AR and the result is written into the target's residual at the NLA's layer "
        "(replace: the reconstruction at the residual's norm; add: alpha times the change the "
        "edit made, in units of the residual's norm), at the position or (--through) there and "
        "at every later one. Prints both greedy continuations and next-token distributions.",
    )
    _add_nla_args(p)
    p.add_argument("--text", required=True, help="the text the target reads")
    p.add_argument("--position", type=int, default=-1, help="token index to steer (-1: last)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--edit", metavar="OLD=>NEW", help="replace OLD by NEW in the explanation")
    what.add_argument("--explanation", help="write this explanation instead of the AV's")
    p.add_argument("--mode", choices=("replace", "add"), default="replace")
    p.add_argument("--alpha", type=float, default=1.0, help="add mode's scale (1.0)")
    p.add_argument("--through", action="store_true", help="also write at every later position")
    p.add_argument("--new-tokens", type=int, default=20, help="continuation length (20)")
    p.add_argument("--top-k", type=int, default=10, help="next tokens shown (10)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="the AV's explanation cap")
    _add_compute_args(p)
    p.add_argument("--out", help="also write the result as JSON")
    p.add_argument("--html", help="also write a page with both continuations and distributions")
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    p.set_defaults(func=_cmd_steer, quick_exit=True)

    p = sub.add_parser(
        "export",
        help="write a trained NLA as Hugging Face checkpoints that travel (or the public layout)",
        description="Write the AV and AR of a run, sweep or exported NLA as Hugging Face "
        "checkpoints with a sidecar (nla.yaml) and a model card; --layout public writes the "
        "public NLA release layout (av/ and ar/ with nla_meta.yaml).",
    )
    _add_nla_args(p)
    p.add_argument("out", help="the directory to write (new, empty, or an earlier export)")
    p.add_argument("--layout", choices=("nla_variants", "public"), default="nla_variants")
    p.add_argument(
        "--lora", choices=("merge", "adapter"), default="merge", help="AV LoRA: merged or kept"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no info logs")
    p.set_defaults(func=_cmd_export)
    return parser


def _follow() -> int:
    """A rank > 0 of a multi-process job (`train.devices` x `train.num_nodes` > 1): run the
    trials rank 0 hands over, recording nothing, until it says no more come."""
    from nla_variants.common import distributed
    from nla_variants.common.errors import TrialStopped
    from nla_variants.config import TrialConfig
    from nla_variants.training.experiment import run_trial

    data = distributed.trial_from_env()
    if data is None:
        if not distributed.initialized():
            raise NLAError(
                f"rank {distributed.rank()} has no trial: it was not launched by Lightning, "
                "torchrun or SLURM for an nla train or nla sweep on rank 0",
                "start every rank with the same launcher command",
            )
        data = distributed.broadcast(None)
    while data is not None:
        with contextlib.suppress(TrialStopped):  # pruned on rank 0: all stopped at one step
            run_trial(TrialConfig.model_validate(data), progress=False, leader=False)
        data = distributed.broadcast(None) if distributed.initialized() else None
    return 0


def _configured_world(args: argparse.Namespace) -> int:
    """train.devices x train.num_nodes of the trial (or the sweep's base trial)."""
    from nla_variants.config import get_dotted

    if args.func is _cmd_train:
        from nla_variants.config import TrialConfig, load_config

        train = load_config(args.config, TrialConfig, args.set).train
        return train.devices * train.num_nodes
    from nla_variants.sweeps.spec import load_sweep

    base = load_sweep(args.config, args.set).base
    return int(get_dotted(base, "train.devices") or 1) * int(
        get_dotted(base, "train.num_nodes") or 1
    )


def _run_command(args: argparse.Namespace) -> int:
    """Training commands may be one rank of a trial on several: rank 0 runs the command, the
    others follow it (see `_follow`) and are released when it is done. With one process per
    trial, every process launched is a command of its own (independent sweep workers)."""
    if args.func not in (_cmd_train, _cmd_sweep):
        return args.func(args)
    from nla_variants.common import distributed

    world, launched = _configured_world(args), distributed.launched_world()
    if world == 1:
        return args.func(args)
    if launched > 1 and launched != world:
        raise NLAError(
            f"{launched} processes were launched, but train.devices x train.num_nodes is {world}",
            "launch train.devices processes on each of train.num_nodes nodes",
        )
    distributed.init_from_env()  # torchrun, srun: join now, so the ranks agree on each trial
    if distributed.is_follower():
        return _follow()
    code = args.func(args)
    distributed.release_followers()
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "quiet", False), trains=args.func in (_cmd_train, _cmd_sweep))
    try:
        return _run_command(args)
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
    finally:
        # a command that never joined skips torch
        if "nla_variants.common.distributed" in sys.modules:
            sys.modules["nla_variants.common.distributed"].close()


def run() -> None:
    """The `nla` console command. A read-only command (`quick_exit`: steer, search) has written
    everything when it returns, so it leaves without the interpreter's teardown of torch and
    transformers, which takes 0.4-1 s: a tenth of a whole `nla steer`."""
    argv = sys.argv[1:]
    code = main(argv)
    if code == 0 and getattr(build_parser().parse_args(argv), "quick_exit", False):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    sys.exit(code)


if __name__ == "__main__":
    run()
