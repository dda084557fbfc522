"""Extraction throughput: our early-exit bf16 path against a naive fp32 full forward, and both
against the machine's measured matmul ceiling.

    python benchmarks/extract.py [--docs 64] [--layer 20] [--threads N]

Workload: builtin-corpus documents as `nla prepare` sees them (quickstart sampling: 4 prefixes
per document, up to 128 tokens). Every path produces the same activations:
  naive       one full fp32 forward per prefix with output_hidden_states (all 30 blocks + LM head)
  ...         intermediate rows switch on one optimisation at a time
  ours        early exit at the layer, one forward per document for all its prefixes, bf16
Throughput is reported as activations/s and as forward tokens/s; the fraction of the ceiling
counts the matmul FLOPs the path really needs (2 x params used x tokens, plus attention).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import matmul_ceiling

from nla_variants.config import PrepareConfig, load_config
from nla_variants.data.corpus import load_corpus
from nla_variants.data.sampling import plan_documents
from nla_variants.target import TargetModel, length_buckets, truncated_backbone


def block_params(target: TargetModel, n_blocks: int) -> int:
    return sum(p.numel() for b in target.model.model.layers[:n_blocks] for p in b.parameters())


def flops(target: TargetModel, n_blocks: int, seq_lens: list[int], lm_head: bool) -> float:
    """Matmul FLOPs of a forward over sequences of these lengths (weights + attention scores)."""
    d = target.d_model
    per_token = 2 * block_params(target, n_blocks)
    if lm_head:
        per_token += 2 * target.model.lm_head.weight.numel()
    attn = sum(2 * 2 * n_blocks * d * n * n / 2 for n in seq_lens)  # QK^T and AV, causal half
    return per_token * sum(seq_lens) + attn


def run_batches(fn, lengths: list[int], budget: int) -> float:
    t = time.perf_counter()
    for batch in length_buckets(lengths, budget):
        fn(batch)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--layer", type=int, default=20)
    ap.add_argument("--budget", type=int, default=8192, help="max_batch_tokens")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = load_config("configs/quickstart.yaml", PrepareConfig)
    docs = load_corpus(cfg.corpus, cfg.seed)[: args.docs]
    target = TargetModel("embedded", precision="fp32")
    ids = target.tokenize([d.text[:4096] for d in docs], max_tokens=cfg.sampling.max_tokens + 1)
    plans = plan_documents(
        docs,
        [len(x) for x in ids],
        positions_per_doc=4,
        min_prefix=8,
        max_tokens=cfg.sampling.max_tokens,
        fractions={"eval": 1.0},
        seed=0,
    )
    by_id = {d.doc_id: s for d, s in zip(docs, ids, strict=True)}
    seqs = {p.doc.doc_id: by_id[p.doc.doc_id] for p in plans}
    prefixes = [seqs[p.doc.doc_id][:n] for p in plans for n in p.prefix_lengths]
    doc_seqs = [seqs[p.doc.doc_id][: max(p.prefix_lengths)] for p in plans]
    positions = [[n - 1 for n in p.prefix_lengths] for p in plans]
    n_act = len(prefixes)
    layer, budget = args.layer, args.budget
    print(
        f"workload: {len(plans)} documents, {n_act} activations, layer {layer}, "
        f"threads {torch.get_num_threads()}"
    )

    ceiling = {dt: matmul_ceiling(dt) for dt in (torch.float32, torch.bfloat16)}
    print(
        f"matmul ceiling: fp32 {ceiling[torch.float32]:.0f} GFLOP/s, "
        f"bf16 {ceiling[torch.bfloat16]:.0f} GFLOP/s"
    )

    def padded(batch, seq_list):
        width = max(len(seq_list[i]) for i in batch)
        x = torch.zeros(len(batch), width, dtype=torch.long)
        m = torch.zeros_like(x)
        for r, i in enumerate(batch):
            x[r, : len(seq_list[i])] = torch.tensor(seq_list[i])
            m[r, : len(seq_list[i])] = 1
        return x, m

    @torch.inference_mode()
    def naive(batch, seq_list=prefixes):
        x, m = padded(batch, seq_list)
        return target.model(input_ids=x, attention_mask=m, output_hidden_states=True).hidden_states[
            layer
        ]

    early = truncated_backbone(target.model, layer)

    @torch.inference_mode()
    def early_exit(batch, seq_list):
        x, m = padded(batch, seq_list)
        return early(input_ids=x, attention_mask=m).last_hidden_state

    rows = []

    def record(name, seconds, seq_list, n_blocks, lm_head, dtype):
        f = flops(target, n_blocks, [len(s) for s in seq_list], lm_head)
        gflops = f / seconds / 1e9
        rows.append(
            (
                name,
                n_act / seconds,
                sum(map(len, seq_list)) / seconds,
                gflops,
                gflops / ceiling[dtype],
            )
        )

    pre_lens = [len(s) for s in prefixes]
    doc_lens = [len(s) for s in doc_seqs]
    n_blocks = target.num_layers
    naive(list(range(4)))  # warm-up
    record(
        "naive: full fp32 forward per prefix, output_hidden_states",
        run_batches(naive, pre_lens, budget),
        prefixes,
        n_blocks,
        True,
        torch.float32,
    )
    record(
        "early exit, fp32, per prefix",
        run_batches(lambda b: early_exit(b, prefixes), pre_lens, budget),
        prefixes,
        layer,
        False,
        torch.float32,
    )
    record(
        "early exit, fp32, one forward per document",
        run_batches(lambda b: early_exit(b, doc_seqs), doc_lens, budget),
        doc_seqs,
        layer,
        False,
        torch.float32,
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        record(
            "early exit, bf16 autocast, per prefix",
            run_batches(lambda b: early_exit(b, prefixes), pre_lens, budget),
            prefixes,
            layer,
            False,
            torch.bfloat16,
        )
    bf16 = TargetModel("embedded", precision="bf16")
    t = time.perf_counter()
    got = bf16.residuals(doc_seqs, layer, positions, budget)
    record(
        "ours: TargetModel.residuals (early exit, per document, bf16)",
        time.perf_counter() - t,
        doc_seqs,
        layer,
        False,
        torch.bfloat16,
    )
    ref = TargetModel("embedded", precision="fp32").residuals(doc_seqs, layer, positions, budget)
    a, b = np.concatenate(got), np.concatenate(ref)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    base = rows[0][1]
    print("\n| path | activations/s | forward tok/s | GFLOP/s | of ceiling | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, aps, tps, gf, frac in rows:
        print(f"| {name} | {aps:.0f} | {tps:.0f} | {gf:.0f} | {frac:.0%} | {aps / base:.1f}x |")
    print(f"\nbf16 vs fp32 vectors: cosine min {cos.min():.5f}, mean {cos.mean():.5f}")


if __name__ == "__main__":
    main()
