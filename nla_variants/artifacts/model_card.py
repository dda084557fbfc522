"""The model card (`README.md`) of an exported NLA: what it reads, the training data, the recipe
and the evaluation table, all taken from the export's sidecar so the card never disagrees with
the files beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nla_variants.target import release_layer_index

# evaluation metrics worth a row, in this order (the rest follow alphabetically)
HEADLINE = (
    "eval/roundtrip_fve",
    "eval/roundtrip_shuffled_fve",
    "eval/roundtrip_gap",
    "eval/prompt_fve",
    "eval/beats_prompt",
    "eval/beats_prompt_low",
    "eval/beats_prompt_high",
    "eval/ar_teacher_fve",
    "eval/ar_teacher_shuffled_fve",
    "eval/av_nll_gap",
    "eval/quote_rate",
    "eval/tag_failure_rate",
    "eval/length_mean",
)


def _front_matter(side: dict[str, Any]) -> str:
    meta = {
        "library_name": "transformers",
        "tags": ["natural-language-autoencoder", "interpretability", "nla_variants"],
        "base_model": side["target"]["model"],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _yaml_block(data: Any) -> str:
    return "```yaml\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "```\n"


def _metrics_table(metrics: dict[str, float]) -> str:
    evals = {k: v for k, v in metrics.items() if k.startswith("eval/")}
    if not evals:
        return "No evaluation was recorded with this NLA.\n"
    order = [k for k in HEADLINE if k in evals] + sorted(set(evals) - set(HEADLINE))
    rows = [f"| {k.removeprefix('eval/')} | {evals[k]:.4f} |" for k in order]
    return "| metric (held-out eval split) | value |\n|---|---|\n" + "\n".join(rows) + "\n"


def render_model_card(side: dict[str, Any]) -> str:
    target, layer = side["target"].get("name") or side["target"]["model"], side["layer"]
    av, ar = side["av"], side.get("ar") or {}
    data = side.get("data") or {}
    what = (
        "the difference between two models' activations"
        if side.get("diff_model")
        else ("residual activations")
    )
    parts = [
        _front_matter(side),
        f"# Natural Language Autoencoder for `{target}`, layer {layer}\n",
        f"An NLA that reads {what} of `{target}` at `hidden_states[{layer}]` (the residual after "
        f"{layer} blocks; layer index {release_layer_index(layer)} in the public NLA release's "
        "convention) and says in words what they hold. The Activation Verbalizer (`av/`, "
        f"variant `{av['variant']}`) turns a vector into an explanation; the Activation "
        f"Reconstructor (`ar/`, variant `{ar.get('variant', 'none')}`) turns the explanation back "
        "into a vector, which scores how much of the vector the words carry.\n",
        "## Use\n",
        "```bash\n"
        "pip install nla-variants\n"
        'nla explain THIS_DIRECTORY --text "Any text you like." --html reading.html\n'
        "```\n",
        f"Weights: {side.get('source', {}).get('weights') or 'final'}; the AV is "
        f"{'a PEFT adapter over the target' if av['weights'] == 'adapter' else 'a full model'}. "
        "`nla.yaml` holds everything needed to feed them (placeholder token and neighbours, "
        "prompt templates, injection settings); `context.safetensors` the training mean.\n",
        "## Training data\n",
        _yaml_block(data) if data else "Not recorded.\n",
        "## Recipe\n",
        _yaml_block({"injection": side.get("injection"), **(side.get("recipe") or {})}),
        "## Evaluation\n",
        _metrics_table(side.get("metrics") or {}),
        "\nFVE is against predicting the mean training direction; `*_shuffled_fve` scores the "
        "same predictions against other examples' vectors (the control); their gap is the "
        "evidence that the explanations carry information about the vector.\n",
    ]
    return "\n".join(parts)


def write_model_card(path: Path, side: dict[str, Any]) -> None:
    path.write_text(render_model_card(side), encoding="utf-8")
