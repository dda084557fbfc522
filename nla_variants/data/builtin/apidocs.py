"""Generated technical documentation: man pages, `--help` output, API references, config references.

Why: installed docstrings and package READMEs are mostly library reference text; command-line
manuals and configuration tables are the other half of technical writing in pretraining data, and
they keep the genre populated on an install without stdlib sources or package metadata.
"""

from __future__ import annotations

import random

from .grammar import P, W, render_document

_STEM = W("sync pack tidy scan index fetch merge watch serve sift stash trace shard probe mint")
_TAIL = W("ctl d er ify tool kit up io x fs")
_THING = P(
    """log files|image folders|database dumps|CSV exports|backups|configuration files|
    build artefacts|mail archives|sensor logs|video clips|audio recordings|package caches"""
)
_VERB = P(
    """synchronises|compresses|indexes|validates|converts|deduplicates|archives|watches|
    checksums|uploads|prunes|splits"""
)
_WHERE = P("a remote host|object storage|a local directory|a network share|a tape library")

# (flag, argument or "", description); descriptions may use {thing}.
_OPTIONS = (
    ("-n, --dry-run", "", "Show what would be done without changing anything."),
    ("-v, --verbose", "", "Print each file as it is processed. Repeat for more detail."),
    ("-q, --quiet", "", "Suppress all output except errors."),
    ("-o, --output", "DIR", "Write results to DIR instead of the current directory."),
    ("-j, --jobs", "N", "Run up to N workers in parallel (default: number of CPUs)."),
    ("-c, --config", "FILE", "Read settings from FILE before applying command-line options."),
    ("--exclude", "PATTERN", "Skip paths matching the glob PATTERN. May be given several times."),
    ("--since", "DATE", "Only consider {thing} modified after DATE (YYYY-MM-DD)."),
    ("--max-size", "SIZE", "Ignore files larger than SIZE, e.g. 200M or 4G."),
    ("--retries", "N", "Retry failed transfers N times with exponential backoff (default: 3)."),
    ("--checksum", "ALGO", "Verify content with ALGO: sha256 (default), blake2b or crc32."),
    ("-f, --force", "", "Overwrite existing output without asking."),
    ("--keep", "N", "Keep the N most recent copies and delete older ones."),
    ("--format", "FMT", "Output format: text, json or csv."),
    ("--timeout", "SECONDS", "Give up on a single operation after SECONDS."),
    ("--no-color", "", "Disable coloured output; also honoured via the NO_COLOR variable."),
)
_EXIT = (
    "0   success",
    "1   some {thing} could not be processed",
    "2   invalid command-line usage",
    "3   the configuration file could not be read",
    "4   the destination was unreachable",
    "130 interrupted by the user",
)
_PARAMS = (
    (
        "path",
        "str or PathLike",
        "Location of the input. Relative paths are resolved against the working directory.",
    ),
    ("timeout", "float, optional", "Seconds to wait before giving up. None waits forever."),
    ("encoding", "str, default 'utf-8'", "Text encoding used to decode the input."),
    ("strict", "bool, default False", "Raise on malformed records instead of skipping them."),
    ("limit", "int or None", "Stop after this many items. None means no limit."),
    ("callback", "callable, optional", "Called with each item after it is processed."),
    ("chunk_size", "int, default 65536", "Number of bytes read per call."),
    ("retries", "int, default 3", "How many times to retry a failed operation."),
    ("key", "str", "Name of the field used to identify records."),
    (
        "overwrite",
        "bool, default False",
        "Replace existing output instead of raising FileExistsError.",
    ),
)
_RAISES = (
    ("FileNotFoundError", "If `path` does not exist."),
    ("ValueError", "If a record cannot be parsed and `strict` is true."),
    ("TimeoutError", "If the operation does not finish within `timeout` seconds."),
    ("PermissionError", "If the destination is not writable."),
)
_FUNC_VERB = W("load read parse iter write dump merge validate normalise split fetch open")
_FUNC_OBJ = W("records config manifest entries rows frames index bundle metadata batch")
_CONFIG = (
    ("cache_dir", "path", "~/.cache/{tool}", "Where downloaded and intermediate files are kept."),
    ("log_level", "string", "info", "One of debug, info, warning, error."),
    ("max_workers", "integer", "4", "Upper bound on concurrent workers."),
    ("retry_backoff", "float", "1.5", "Multiplier applied to the delay after each failed attempt."),
    ("timeout", "duration", "30s", "Per-request timeout; accepts s, m and h suffixes."),
    ("compression", "string", "zstd", "Codec for stored files: none, gzip or zstd."),
    ("verify_tls", "boolean", "true", "Check server certificates. Disable only for local testing."),
    ("exclude", "list", "[]", "Glob patterns of paths to skip."),
    ("schedule", "cron", "0 3 * * *", "When the background job runs."),
    ("retention_days", "integer", "30", "Delete archived copies older than this."),
)


def _tool(rng: random.Random) -> str:
    return rng.choice(_STEM) + rng.choice(_TAIL)


def _man_page(rng: random.Random, target: int) -> str:
    tool, thing = _tool(rng), rng.choice(_THING)
    verb, where = rng.choice(_VERB), rng.choice(_WHERE)
    opts = rng.sample(_OPTIONS, rng.randint(4, 9))
    sec = rng.choice((1, 1, 8))
    lines = [
        f"{tool.upper()}({sec})",
        "",
        "NAME",
        f"       {tool} - {verb} {thing}",
        "",
        "SYNOPSIS",
        f"       {tool} [OPTION]... SOURCE [DEST]",
        "",
        "DESCRIPTION",
        f"       {tool} {verb} {thing} from SOURCE to {where}. Files that have not changed since",
        "       the last run are skipped, so repeated runs are cheap.",
        "",
        "OPTIONS",
    ]
    for flag, arg, desc in opts:
        lines += [
            f"       {flag}{' ' + arg if arg else ''}",
            f"              {desc.format(thing=thing)}",
            "",
        ]
    if sum(map(len, lines)) < target:
        lines += (
            ["EXIT STATUS"]
            + [f"       {c.format(thing=thing)}" for c in _EXIT[: rng.randint(3, 6)]]
            + [""]
        )
    if sum(map(len, lines)) < target:
        flag = opts[0][0].split(", ")[-1]
        lines += [
            "EXAMPLES",
            f"       {tool} {flag} ~/data /mnt/{rng.choice(_STEM)}",
            "",
            f"       {tool} --exclude '*.tmp' -j 8 ./in ./out",
            "",
        ]
    lines += ["SEE ALSO", f"       {_tool(rng)}({rng.choice((1, 5, 8))}), {_tool(rng)}(1)"]
    return "\n".join(lines)


def _help_output(rng: random.Random, target: int) -> str:
    tool, thing = _tool(rng), rng.choice(_THING)
    opts = rng.sample(_OPTIONS, rng.randint(5, 10))
    usage = " ".join(f"[{o[0].split(', ')[0]}{' ' + o[1] if o[1] else ''}]" for o in opts[:4])
    lines = [
        f"usage: {tool} [-h] {usage} source [dest]",
        "",
        f"{rng.choice(_VERB).capitalize()} {thing} and report what changed.",
        "",
        "positional arguments:",
        "  source                where to read from",
        "  dest                  where to write (default: ./out)",
        "",
        rng.choice(("options:", "optional arguments:")),
        "  -h, --help            show this help message and exit",
    ]
    for flag, arg, desc in opts:
        left = f"  {flag}{' ' + arg if arg else ''}"
        text = desc.format(thing=thing)
        lines.append(f"{left:<24}{text}" if len(left) < 23 else f"{left}\n{'':<24}{text}")
    if rng.random() < 0.5:
        lines += ["", f"Environment: {tool.upper()}_CONFIG overrides the default config path."]
    return "\n".join(lines)


def _api_reference(rng: random.Random, target: int) -> str:
    pkg = rng.choice(_STEM) + rng.choice(("lib", "py", "kit", "io", ""))
    blocks: list[str] = []
    style = rng.randrange(2)
    while sum(map(len, blocks)) < target:
        name = f"{rng.choice(_FUNC_VERB)}_{rng.choice(_FUNC_OBJ)}"
        first = rng.choice([p for p in _PARAMS if p[0] in ("path", "key")])
        params = [first] + rng.sample(
            [p for p in _PARAMS if p is not first and p[0] != "key"], rng.randint(1, 3)
        )
        sig = ", ".join(p[0] if i == 0 else f"{p[0]}=..." for i, p in enumerate(params))
        obj = rng.choice(_FUNC_OBJ)
        summary = rng.choice(
            (
                f"Return the {obj} found at `{params[0][0]}`.",
                f"Iterate over {obj} lazily, one item at a time.",
                f"Write {obj} to `{params[0][0]}` atomically.",
                f"Check {obj} against the schema and report every problem found.",
            )
        )
        raises = rng.sample(_RAISES, rng.randint(1, 2))
        if style == 0:
            body = [
                f"{pkg}.{name}({sig})",
                "",
                f"    {summary}",
                "",
                "    Parameters",
                "    ----------",
            ]
            for pname, ptype, pdesc in params:
                body += [f"    {pname} : {ptype}", f"        {pdesc}"]
            body += [
                "",
                "    Returns",
                "    -------",
                "    list of dict",
                f"        The {obj}, in input order.",
                "",
                "    Raises",
                "    ------",
            ]
            for exc, why in raises:
                body += [f"    {exc}", f"        {why}"]
        else:
            body = [f"## `{pkg}.{name}({sig})`", "", summary, "", "**Arguments:**", ""]
            body += [f"- `{pname}` ({ptype}): {pdesc}" for pname, ptype, pdesc in params]
            body += ["", f"**Returns:** the {obj} as a list of dicts.", "", "**Raises:**", ""]
            body += [f"- `{exc}`: {why}" for exc, why in raises]
            if rng.random() < 0.5:
                body += [
                    "",
                    "```python",
                    f">>> from {pkg} import {name}",
                    f">>> {name}('data/{obj}.json')[:2]",
                    "[{'id': 1, ...}, {'id': 2, ...}]",
                    "```",
                ]
        blocks.append("\n".join(body))
    return "\n\n".join(blocks)


def _config_reference(rng: random.Random, target: int) -> str:
    tool = _tool(rng)
    keys = rng.sample(_CONFIG, rng.randint(4, len(_CONFIG)))
    style = rng.randrange(2)
    lines = [
        rng.choice(
            (f"{tool} configuration reference", f"{tool}.toml settings", f"Settings ({tool})")
        ),
        "",
        f"{tool} reads `{rng.choice(('/etc/', '~/.config/'))}{tool}/{tool}.toml` at start-up. "
        "Unknown keys are rejected.",
        "",
    ]
    if style == 0:
        lines += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {t} | `{d.format(tool=tool)}` | {desc} |" for k, t, d, desc in keys]
    else:
        for k, t, d, desc in keys:
            lines += [f"{k} ({t}, default: {d.format(tool=tool)})", f"    {desc}", ""]
    if rng.random() < 0.6:
        lines += ["", "Example:", "", "```toml", f"[{tool}]"]
        lines += [
            f"{k} = {d.format(tool=tool)!r}"
            if t in ("string", "path", "duration", "cron")
            else f"{k} = {d}"
            for k, t, d, _ in keys[:4]
        ]
        lines.append("```")
    return "\n".join(lines)


_FORMATS = (_man_page, _help_output, _api_reference, _config_reference)


def make_api_doc(rng: random.Random) -> str:
    """One manual page, help screen, API reference or configuration reference (450-3000 chars)."""
    return render_document(rng, _FORMATS, median=1000, high=2400, grow=400)
