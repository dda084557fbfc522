"""The flowchart AR: a soft decision tree over the words of the explanation, leaves holding
vectors. An extremely simple, printable reconstructor (docs/method.md, "the AR is too smart": an
AR that can only route on which words appear forces the AV to say things plainly).

Features: x[w] = 1 if word w occurs in the explanation (lower-cased, `[a-z]+` runs). The
vocabulary is fixed before any data is read: the target tokenizer's whole-word tokens (a
space-marker token followed by `min_word_len`+ letters), in token-id order (BPE merge order, so
roughly frequency order), the first `vocab_size` of them, plus `extra_words`. It is rebuilt from
the tokenizer on load, so checkpoints hold only tensors.

Tree: `depth` levels of internal nodes in heap order (children of n: 2n+1 = "no",
2n+2 = "yes"); node n says yes with probability sigmoid(w_n . x + b_n); a leaf's weight is the
product of the probabilities along its path; the prediction is the weighted sum of leaf vectors.
Depth 0 is one leaf: a constant prediction (the train-mean control). Trained by the baseline's
normalised MSE through the same trainers (warm start, RL).

The trial's AR learning rate is tuned for transformers (1e-4); Adam's step size does not depend
on a parameter's scale, so the tree stores its parameters divided by `lr_multiplier` and its
effective learning rate is lr x lr_multiplier.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn

from nla_variants.common.strict import Strict
from nla_variants.core.vectors import normalized_mse
from nla_variants.target import load_tokenizer
from nla_variants.variants.large_models import ComponentMemory, ModelShape
from nla_variants.variants.registry import BuildContext, register_ar

_WORD = re.compile(r"[a-z]+")
_SPACE_MARKERS = ("\u0120", "\u2581")  # GPT-2 style "Ġ", SentencePiece "▁"


class FlowchartARConfig(Strict):
    depth: int = Field(3, ge=0, le=10, description="levels of yes/no tests (2**depth leaves)")
    vocab_size: int | None = Field(
        8192, ge=1, description="first N whole-word tokenizer tokens (None: all of them)"
    )
    min_word_len: int = Field(3, ge=1)
    extra_words: list[str] = Field(default_factory=list, description="words added to the vocab")
    lr_multiplier: float = Field(300.0, gt=0, description="tree lr = the AR lr x this")
    print_words: int = Field(4, ge=1, description="words shown per test in flowchart()")

    def memory_shape(self, shape: ModelShape) -> ComponentMemory:
        """A word table and a leaf direction per leaf, all trained; no target block runs."""
        leaves = 2**self.depth
        words = self.vocab_size or shape.vocab
        return ComponentMemory(trainable=float(leaves * (words + shape.d_model)))


def tokenizer_words(tokenizer, min_len: int, limit: int | None) -> list[str]:
    """Lower-cased whole-word tokens of a tokenizer, earliest-merged first (deterministic)."""
    first: dict[str, int] = {}
    for token, token_id in tokenizer.get_vocab().items():
        if token[:1] not in _SPACE_MARKERS:
            continue
        word = token[1:].lower()
        if len(word) >= min_len and _WORD.fullmatch(word) and token_id < first.get(word, 1 << 62):
            first[word] = token_id
    words = sorted(first, key=first.__getitem__)
    return words if limit is None else words[:limit]


@register_ar("flowchart", FlowchartARConfig)
class FlowchartAR(nn.Module):
    """Explanations -> predicted vectors [B, d] through a soft decision tree over words."""

    contract_configs = {"deep_small_vocab": {"depth": 4, "vocab_size": 512, "min_word_len": 2}}

    def __init__(self, cfg: FlowchartARConfig, ctx: BuildContext) -> None:
        super().__init__()
        self.cfg = cfg
        tokenizer = load_tokenizer(ctx.source.load_path)
        words = tokenizer_words(tokenizer, cfg.min_word_len, cfg.vocab_size)
        for w in (w.lower() for w in cfg.extra_words):
            if _WORD.fullmatch(w) and w not in words:
                words.append(w)
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        n_nodes, n_leaves = 2**cfg.depth - 1, 2**cfg.depth
        s = cfg.lr_multiplier
        # parameters are stored / lr_multiplier (see the module docstring); word weights start
        # small and random (tests nearly undecided, but the text matters from step 0 and the
        # nodes are not symmetric), leaves random; both from the trial's seed
        self.gate_w = nn.Parameter(torch.randn(n_nodes, len(words)) * (0.1 / s))
        self.gate_b = nn.Parameter(torch.zeros(n_nodes))
        self.leaves = nn.Parameter(torch.randn(n_leaves, ctx.d_model) / s)

    # -- features and routing ---------------------------------------------------------------------

    def sequences(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> list[list[int]]:
        """Vocabulary ids of the distinct known words of each explanation."""
        return [
            sorted({self.index[w] for w in _WORD.findall(e.lower()) if w in self.index})
            for e in explanations
        ]

    def features(self, explanations: Sequence[str]) -> torch.Tensor:
        """Word-presence matrix [B, V] (0/1)."""
        x = torch.zeros(len(explanations), len(self.words))
        for row, ids in enumerate(self.sequences(explanations)):
            x[row, ids] = 1.0
        return x.to(self.leaves.device)

    def leaf_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of reaching each leaf [B, 2**depth] (rows sum to 1)."""
        s = self.cfg.lr_multiplier
        yes = torch.sigmoid(s * (x @ self.gate_w.T + self.gate_b)) if len(self.gate_b) else x[:, :0]
        probs = torch.ones(x.shape[0], 1, device=x.device, dtype=yes.dtype)
        for level in range(self.cfg.depth):
            g = yes[:, 2**level - 1 : 2 ** (level + 1) - 1]
            probs = torch.stack([probs * (1 - g), probs * g], dim=-1).flatten(1)
        return probs

    def forward(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> torch.Tensor:
        x = self.features(explanations).to(self.leaves.dtype)
        return (self.leaf_weights(x) @ (self.cfg.lr_multiplier * self.leaves)).float()

    def loss(
        self,
        explanations: Sequence[str],
        vectors: torch.Tensor,
        sources: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Normalised MSE (2(1 - cos)) between prediction and activation, batch mean: the
        objective of every AR."""
        return normalized_mse(self(explanations, sources), vectors).mean()

    def metadata(self) -> dict:
        digest = hashlib.sha256("\n".join(self.words).encode()).hexdigest()[:16]
        return {"vocab_words": len(self.words), "vocab_sha": digest, "leaves": 2**self.cfg.depth}

    # -- the printout -------------------------------------------------------------------------------

    @torch.no_grad()
    def flowchart(self, mean: torch.Tensor | None = None) -> str:
        """The tree as text: each test as its heaviest words ("yes" when the weighted word count
        plus the bias is positive), each leaf as its norm, its cosine with `mean` (e.g. the
        training mean direction; the average leaf if None) and its largest coordinates."""
        s = self.cfg.lr_multiplier
        w, b = (s * self.gate_w).cpu(), (s * self.gate_b).cpu()
        leaves = (s * self.leaves).float().cpu()
        ref = (leaves.mean(0) if mean is None else mean.float().cpu()).flatten()
        ref_name = "mean leaf" if mean is None else "mean"

        def test(n: int) -> str:
            k = min(self.cfg.print_words, w.shape[1])
            top = w[n].abs().topk(k).indices.tolist()
            terms = " ".join(f"{float(w[n, i]):+.2f}*{self.words[i]!r}" for i in top)
            return f"[node {n}] {terms} {float(b[n]):+.2f} > 0 ?"

        def leaf(i: int) -> str:
            v = leaves[i]
            cos = float(torch.nn.functional.cosine_similarity(v, ref, dim=0))
            dims = (v - leaves.mean(0)).abs().topk(min(3, v.numel())).indices.tolist()
            top = ", ".join(f"d{j}={float(v[j]):+.2f}" for j in dims)
            return f"(leaf {i}) |v|={float(v.norm()):.2f} cos({ref_name})={cos:+.3f} top {top}"

        n_nodes = 2**self.cfg.depth - 1
        lines = [
            f"flowchart AR: depth {self.cfg.depth}, {n_nodes + 1} leaves, {len(self.words)} "
            "words (soft routing; each test is a weighted count of words present)"
        ]

        def walk(n: int, indent: str, label: str, last: bool) -> None:
            branch = "" if not label else ("`- " if last else "|- ") + label + ": "
            text = test(n) if n < n_nodes else leaf(n - n_nodes)
            lines.append(indent + branch + text)
            if n < n_nodes:
                deeper = indent + ("" if not label else ("   " if last else "|  "))
                walk(2 * n + 2, deeper, "yes", False)
                walk(2 * n + 1, deeper, "no", True)

        walk(0, "", "", True)
        return "\n".join(lines)
