"""`nla steer`: steer the target by editing what the AV said about one of its activations.

Why: the AR maps text to an activation, so an edited explanation ("the phrase goes on with
'cat'" -> "... with 'dog'") is a description of the state the model should be in. The AV
explains the residual at a position, the edit goes through the AR, and the result is written back
into the target's residual stream at the NLA's layer; the target then continues the text.

Two ways to write it, with h the residual at the position and r^ a unit AR reconstruction:
- replace: h becomes r^(edited) at h's norm (delta = |h| r^(edited) - h);
- add: delta = alpha |h| (r^(edited) - r^(original)), the difference the edit made, in units of
  the residual's norm.
The delta is added at the position, and with `through` at every later position as well (the
generated ones included). Both continuations (greedy) and the next-token distributions before and
after (top-k and the KL between them) are reported.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nla_variants.common.errors import NLAError

MODES = ("replace", "add")


@dataclass
class SteerSettings:
    position: int = -1  # token index into the text (negative: from the end)
    edit: str | None = None  # "OLD=>NEW", applied to the AV's explanation
    explanation: str | None = None  # or the explanation to write, whole
    mode: str = "replace"
    alpha: float = 1.0  # add mode's scale
    through: bool = False  # also write at every later position
    new_tokens: int = 20  # continuation length
    top_k: int = 10
    max_new_tokens: int = 96  # the AV's explanation cap
    precision: str = "auto"
    device: str | None = None


def parse_edit(spec: str) -> tuple[str, str]:
    """'OLD=>NEW' -> (OLD, NEW)."""
    if "=>" not in spec:
        raise NLAError(f"--edit {spec!r} has no '=>'", "write it as OLD=>NEW, e.g. 'cat=>dog'")
    old, new = spec.split("=>", 1)
    if not old:
        raise NLAError(f"--edit {spec!r} replaces nothing", "put the text to replace before '=>'")
    return old, new


def check_settings(s: SteerSettings) -> None:
    if (s.edit is None) == (s.explanation is None):
        raise NLAError("pass exactly one of --edit and --explanation", "e.g. --edit 'cat=>dog'")
    if s.edit is not None:
        parse_edit(s.edit)
    if s.explanation is not None and not s.explanation.strip():
        raise NLAError("--explanation is empty", "pass the explanation to write")
    if s.mode not in MODES:
        raise NLAError(f"--mode {s.mode} is not one of {', '.join(MODES)}", "pick one")
    if not math.isfinite(s.alpha):
        raise NLAError(f"--alpha {s.alpha} is not a number", "pass e.g. 1.0")
    for flag, value, low in (
        ("--new-tokens", s.new_tokens, 0),
        ("--top-k", s.top_k, 1),
        ("--max-new-tokens", s.max_new_tokens, 1),
    ):
        if value < low:
            raise NLAError(f"{flag} {value} is below {low}", f"pass {flag} {low} or more")


def apply_edit(explanation: str, spec: str) -> str:
    old, new = parse_edit(spec)
    if old not in explanation:
        raise NLAError(
            f"--edit: {old!r} is not in the AV's explanation {explanation!r}",
            "edit words the explanation contains, or pass the whole text with --explanation",
        )
    return explanation.replace(old, new)


class ResidualWriter:
    """A forward hook on the block whose output is the NLA's layer: adds `delta` ([d], or
    [batch, d]: one change per row) at absolute position `position` (and after it, with
    `through`), counting positions across cached decoding steps."""

    def __init__(self, delta: torch.Tensor, position: int, through: bool) -> None:
        self.delta, self.position, self.through = delta, position, through
        self.seen = 0

    def __call__(self, module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        start, end = self.seen, self.seen + hidden.shape[1]
        self.seen = end
        low, high = self.position, (end if self.through else self.position + 1)
        a, b = max(low, start), min(high, end)
        if a < b:
            hidden = hidden.clone()
            delta = self.delta.to(hidden.device, hidden.dtype)
            hidden[:, a - start : b - start] += delta[:, None] if delta.dim() == 2 else delta
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@torch.inference_mode()
def continue_text(
    lm, ids: list[int], n: int, rows: int, device, pad_id: int
) -> tuple[list[list[int]], torch.Tensor]:
    """Greedy continuations of `ids` for up to n tokens, `rows` copies in one batch (a writer
    hook tells the copies apart), and each copy's next-token log-probabilities after the text.
    One batch of two decodes nearly as fast as one sequence: a step reads every weight once."""
    inputs = torch.tensor([ids] * rows, device=device)
    if n == 0:
        return [[] for _ in range(rows)], torch.log_softmax(
            lm(input_ids=inputs).logits[:, -1].float(), -1
        ).cpu()
    out = lm.generate(
        inputs,
        attention_mask=torch.ones_like(inputs),
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=pad_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    first = torch.log_softmax(out.logits[0].float(), -1).cpu()
    stops = lm.generation_config.eos_token_id
    stops = set(stops if isinstance(stops, list) else [stops])
    found = []
    for seq in out.sequences[:, len(ids) :].tolist():
        end = next((i for i, t in enumerate(seq) if t in stops), None)
        found.append(seq if end is None else seq[: end + 1])  # a row that stopped is padded
    return found, first


def _top(logprobs: torch.Tensor, tokenizer, k: int) -> list[dict[str, Any]]:
    values, index = logprobs.topk(k)
    return [
        {"token": tokenizer.decode([int(i)]), "id": int(i), "p": round(float(v.exp()), 5)}
        for v, i in zip(values, index, strict=True)
    ]


def steer(nla_path: str, text: str, s: SteerSettings, target: str | None = None) -> dict[str, Any]:
    """Explain, edit, reconstruct, write and continue (see the module docstring); every input
    is checked before weights load."""
    from nla_variants.artifacts.loading import load, locate
    from nla_variants.evaluation.rollouts import ar_predict, generate_all
    from nla_variants.target import (
        TargetModel,
        autocast_context,
        decoder_blocks,
        default_device,
        resolve_precision,
    )

    check_settings(s)
    if not text:
        raise NLAError("--text is empty", "pass the text to steer")
    ref = locate(nla_path, target)
    if ref.diff_model:
        raise NLAError(
            f"{nla_path} reads difference vectors, which are not residuals to write back",
            "steer with an NLA trained on the target's own activations",
        )
    device = torch.device(s.device) if s.device else default_device()
    precision = s.precision
    if precision == "auto" and device.type == "cpu":
        # one sequence at a time: bf16 autocast recasts every fp32 weight at every generated
        # token, and on these CPUs that made steering ~1.5x slower than plain fp32
        precision = "fp32"
    model = TargetModel(ref.target, precision, str(device))
    ids = model.tokenize([text])[0]
    position = s.position + len(ids) if s.position < 0 else s.position
    if not 0 <= position < len(ids):
        raise NLAError(
            f"--position {s.position} is outside the text's {len(ids)} tokens",
            f"pass 0..{len(ids) - 1} or -1..-{len(ids)}",
        )
    nla = load(ref, device)
    if nla.ar is None:
        raise NLAError(f"{nla_path} has no AR", "steer with an NLA that has both models")
    clock = [time.perf_counter()]
    autocast = autocast_context(device, resolve_precision(precision, device))
    residual = torch.from_numpy(model.residuals([ids], ref.layer, [[position]])[0][0]).float()
    generated, _ = generate_all(nla.av, residual[None], 1, s.max_new_tokens, None, autocast)
    original = nla.av.extract(generated[0])
    if s.edit is not None and original is None:
        raise NLAError(
            f"the AV's explanation of position {position} never closed in {s.max_new_tokens} "
            "tokens, so there is nothing to edit",
            "raise --max-new-tokens or pass the whole text with --explanation",
        )
    edited = apply_edit(original, s.edit) if s.edit is not None else s.explanation.strip()
    prefix = model.tokenizer.decode(ids[: position + 1])
    if s.mode == "add" and original is None:
        raise NLAError(
            "--mode add needs the AV's own explanation, and it never closed",
            "use --mode replace, or raise --max-new-tokens",
        )
    readings = [edited] + ([original] if original is not None else [])
    with autocast:
        found = ar_predict(nla.ar, readings, [prefix] * len(readings), len(readings))
    for name, vector in zip(("edited", "original"), found, strict=False):
        if float(vector.norm()) < 1e-8:
            raise NLAError(
                f"the AR's reconstruction of the {name} explanation has zero norm",
                "edit the explanation differently: there is no direction to write",
            )
    unit = torch.nn.functional.normalize(found.float(), dim=-1)
    norm = residual.norm()
    if s.mode == "replace":
        delta = unit[0] * norm - residual
    else:
        delta = s.alpha * norm * (unit[0] - unit[1])
    clock.append(time.perf_counter())

    lm, tok = model.model, model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    block = decoder_blocks(lm)[ref.layer - 1]  # its output is hidden_states[layer]
    # row 0 runs unsteered, row 1 steered
    writer = ResidualWriter(torch.stack([torch.zeros_like(delta), delta]), position, s.through)
    handle = block.register_forward_hook(writer)
    try:
        with model.autocast():
            (before, after), logp = continue_text(lm, ids, s.new_tokens, 2, device, pad)
    finally:
        handle.remove()
    logp_before, logp_after = logp[0], logp[1]
    clock.append(time.perf_counter())
    kl = float((logp_after.exp() * (logp_after - logp_before)).sum())
    cosine = {
        "edited_vs_residual": float(unit[0] @ torch.nn.functional.normalize(residual, dim=0)),
    }
    if original is not None:
        cosine["original_vs_residual"] = float(
            unit[1] @ torch.nn.functional.normalize(residual, dim=0)
        )
        cosine["edited_vs_original"] = float(unit[0] @ unit[1])
    return {
        "nla": str(nla_path),
        "text": text,
        "position": position,
        "token": tok.decode([ids[position]]),
        "layer": ref.layer,
        "mode": s.mode,
        "alpha": s.alpha if s.mode == "add" else None,
        "through": s.through,
        "explanation": original,
        "edited": edited,
        "cosine": {k: round(v, 5) for k, v in cosine.items()},
        "residual_norm": round(float(norm), 4),
        "delta_norm": round(float(delta.norm()), 4),
        "continuation": {"before": tok.decode(before), "after": tok.decode(after)},
        "next_token": {
            "before": _top(logp_before, tok, s.top_k),
            "after": _top(logp_after, tok, s.top_k),
            "kl_after_before": round(kl, 6),
        },
        "seconds": {
            "explain": round(clock[1] - clock[0], 3),
            "continue": round(clock[2] - clock[1], 3),
        },
    }


def print_result(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"position {r['position']} ({r['token']!r}), layer {r['layer']}, {r['mode']}"
        + (f" x{r['alpha']}" if r["alpha"] is not None else "")
        + (", through the end" if r["through"] else ""),
        highlight=False,
    )
    console.print(f"AV:     {r['explanation']!r}", highlight=False)
    console.print(f"edited: {r['edited']!r}", highlight=False)
    console.print(
        f"cosine: {r['cosine']}; |delta| / |h| = "
        f"{r['delta_norm'] / max(r['residual_norm'], 1e-12):.3f}",
        highlight=False,
    )
    t = Table("", "continuation", "next token (top 5)", title="before and after")
    for when in ("before", "after"):
        top = ", ".join(f"{x['token']!r} {x['p']:.2f}" for x in r["next_token"][when][:5])
        t.add_row(when, repr(r["continuation"][when]), top)
    console.print(t)
    console.print(
        f"KL(after || before) of the next token: {r['next_token']['kl_after_before']:.4f}"
    )


def write_html(path: Path, r: dict[str, Any]) -> None:
    """A self-contained page: the explanation and its edit, both continuations, both next-token
    distributions."""
    from nla_variants.common.io import write_text_atomic

    e = html.escape

    def bars(rows: list[dict]) -> str:
        return "".join(
            f"<tr><td><code>{e(repr(x['token']))}</code></td><td>{x['p']:.3f}</td>"
            f"<td><div class=bar style='width:{300 * x['p']:.0f}px'></div></td></tr>"
            for x in rows
        )

    text = r["text"]
    page = f"""<!doctype html><meta charset=utf-8><title>nla steer</title>
<style>body{{font:14px system-ui;max-width:60em;margin:2em auto}}pre{{white-space:pre-wrap;
background:#f4f4f4;padding:.5em}}.bar{{height:.8em;background:#4a7}}td{{padding:0 .5em}}</style>
<h1>Steering at token {r["position"]} (<code>{e(repr(r["token"]))}</code>), layer {r["layer"]}</h1>
<p>{e(r["mode"])}{"" if r["alpha"] is None else f" x{r['alpha']}"}
{", through the end" if r["through"] else ""}; cosine {e(str(r["cosine"]))}</p>
<h2>Text</h2><pre>{e(text)}</pre>
<h2>The AV's explanation</h2><pre>{e(str(r["explanation"]))}</pre>
<h2>Written instead</h2><pre>{e(r["edited"])}</pre>
<h2>Continuation before</h2><pre>{e(r["continuation"]["before"])}</pre>
<h2>Continuation after</h2><pre>{e(r["continuation"]["after"])}</pre>
<h2>Next token (KL after || before = {r["next_token"]["kl_after_before"]:.4f})</h2>
<table><tr><th colspan=3>before</th></tr>{bars(r["next_token"]["before"])}
<tr><th colspan=3>after</th></tr>{bars(r["next_token"]["after"])}</table>
"""
    write_text_atomic(path, page)
