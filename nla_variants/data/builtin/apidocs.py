"""Generated technical documentation: man pages, `--help` output, API references, config references.

Why: installed docstrings and package READMEs are mostly library reference text; command-line
manuals and configuration tables are the other half of technical writing in pretraining data, and
they keep the genre populated on an install without stdlib sources or package metadata. Tool
names, options, parameters and settings are `data/apidocs.yaml`.
"""

from __future__ import annotations

import random

from .grammar import lexicon, render_document

_D = lexicon("apidocs")  # options: (flag, argument, description); config: (key, type, default, why)


def _tool(rng: random.Random) -> str:
    return rng.choice(_D["stem"]) + rng.choice(_D["tail"])


def _man_page(rng: random.Random, target: int) -> str:
    tool, thing = _tool(rng), rng.choice(_D["thing"])
    verb, where = rng.choice(_D["verb"]), rng.choice(_D["where"])
    opts = rng.sample(_D["options"], rng.randint(4, 9))
    sec = rng.choice((1, 1, 8))
    slots = {"TOOL": tool.upper(), "sec": sec, "tool": tool, "verb": verb, "where": where}
    lines = _D["man_head"].format(thing=thing, **slots).split("\n")
    for flag, arg, desc in opts:
        lines += [
            f"       {flag}{' ' + arg if arg else ''}",
            f"              {desc.format(thing=thing)}",
            "",
        ]
    if sum(map(len, lines)) < target:
        lines += (
            ["EXIT STATUS"]
            + [f"       {c.format(thing=thing)}" for c in _D["exit"][: rng.randint(3, 6)]]
            + [""]
        )
    if sum(map(len, lines)) < target:
        flag = opts[0][0].split(", ")[-1]
        examples = _D["man_examples"].format(tool=tool, flag=flag, stem=rng.choice(_D["stem"]))
        lines += examples.split("\n")
    lines += ["SEE ALSO", f"       {_tool(rng)}({rng.choice((1, 5, 8))}), {_tool(rng)}(1)"]
    return "\n".join(lines)


def _help_output(rng: random.Random, target: int) -> str:
    tool, thing = _tool(rng), rng.choice(_D["thing"])
    opts = rng.sample(_D["options"], rng.randint(5, 10))
    usage = " ".join(f"[{o[0].split(', ')[0]}{' ' + o[1] if o[1] else ''}]" for o in opts[:4])
    verb = rng.choice(_D["verb"]).capitalize()
    slots = {"tool": tool, "usage": usage, "Verb": verb, "thing": thing}
    lines = _D["help_head"].format(options=rng.choice(_D["help_options"]), **slots).split("\n")
    for flag, arg, desc in opts:
        left = f"  {flag}{' ' + arg if arg else ''}"
        text = desc.format(thing=thing)
        lines.append(f"{left:<24}{text}" if len(left) < 23 else f"{left}\n{'':<24}{text}")
    if rng.random() < 0.5:
        lines += ["", f"Environment: {tool.upper()}_CONFIG overrides the default config path."]
    return "\n".join(lines)


def _api_reference(rng: random.Random, target: int) -> str:
    pkg = rng.choice(_D["stem"]) + rng.choice(("lib", "py", "kit", "io", ""))
    blocks: list[str] = []
    style = rng.randrange(2)
    while sum(map(len, blocks)) < target:
        name = f"{rng.choice(_D['func_verb'])}_{rng.choice(_D['func_obj'])}"
        first = rng.choice([p for p in _D["params"] if p[0] in ("path", "key")])
        params = [first] + rng.sample(
            [p for p in _D["params"] if p is not first and p[0] != "key"], rng.randint(1, 3)
        )
        sig = ", ".join(p[0] if i == 0 else f"{p[0]}=..." for i, p in enumerate(params))
        obj = rng.choice(_D["func_obj"])
        summary = rng.choice(_D["api_summary"]).format(obj=obj, first=params[0][0])
        raises = rng.sample(_D["raises"], rng.randint(1, 2))
        slots = {"pkg": pkg, "name": name, "sig": sig, "summary": summary, "obj": obj}
        if style == 0:
            args = "\n".join(f"    {n} : {t}\n        {d}" for n, t, d in params)
            errors = "\n".join(f"    {exc}\n        {why}" for exc, why in raises)
            body = _D["api_numpy"].format(params=args, raises=errors, **slots)
        else:
            args = "\n".join(f"- `{n}` ({t}): {d}" for n, t, d in params)
            errors = "\n".join(f"- `{exc}`: {why}" for exc, why in raises)
            body = _D["api_markdown"].format(params=args, raises=errors, **slots)
            if rng.random() < 0.5:
                body += _D["api_example"].format(**slots)
        blocks.append(body)
    return "\n\n".join(blocks)


def _config_reference(rng: random.Random, target: int) -> str:
    tool = _tool(rng)
    keys = rng.sample(_D["config"], rng.randint(4, len(_D["config"])))
    style = rng.randrange(2)
    lines = [
        rng.choice(_D["config_title"]).format(tool=tool),
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
