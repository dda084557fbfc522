"""GPU benchmark: AV warm-start (SFT) MFU and AV rollout tokens/s on CUDA in bf16, at 1 device and
at N devices through Lightning DDP (the `nla train` path: `AVWarmStart` in a Lightning Trainer).

    python benchmarks/gpu.py [--devices 8] [--model embedded] [--batch 16] [--out gpu.json]

MFU = model FLOPs per second / peak dense bf16 FLOPs of all devices used. Model FLOPs per step
(the PaLM convention, every weight counted whether it trains or not, as the reference NLA code's
44% AV-SFT MFU on H100 counts it): 6 x block parameters x tokens (forward 2, backward 4), plus
6 x the LM head on response tokens only (the AV computes logits nowhere else), plus causal
attention 6 x 2 x blocks x d x n^2 / 2 per sequence of n tokens (`train_throughput.py`). With
LoRA the frozen weights need no weight gradient (4 instead of 6 per parameter): `hfu_lora` counts
that, MFU does not. The AdamW step is timed but not counted.

Rollouts: one batched, KV-cached `generate` of B x G rows (the RL step's), an untrained AV so every
row runs to the token cap. Generation needs no communication, so the N-device figure is the
1-device figure x N (each DDP rank samples its share of the rows).

Peak bf16 FLOPs come from the device name (H100/H200 989 TFLOPS dense, A100 312, ...);
`--peak-tflops` overrides. Without CUDA it exits with one line. Writes a JSON of results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# dense bf16 tensor-core TFLOPS by device-name substring (first match wins)
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "GH200": 989.0,
    "H800": 989.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
}
REFERENCE_MFU = 0.44  # the reference NLA training code's AV SFT MFU on H100


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--devices",
        type=int,
        default=torch.cuda.device_count() or 1,
        help="N for the multi-device run (default: every visible GPU)",
    )
    ap.add_argument("--model", default="embedded", help="target.model spec (default: embedded)")
    ap.add_argument("--layer", type=int, default=None, help="extraction layer (default: 2/3)")
    ap.add_argument("--finetune", default="auto", choices=["auto", "full", "lora"])
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--batch", type=int, default=16, help="AV SFT rows per device per step")
    ap.add_argument("--response-tokens", type=int, default=64, help="teacher response length")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rollout-batch", type=int, default=8, help="B activations")
    ap.add_argument("--group", type=int, default=8, help="G samples per activation")
    ap.add_argument("--tokens", type=int, default=96, help="rollout token cap")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the lookup")
    ap.add_argument("--out", default="gpu_benchmark.json")
    ap.add_argument("--sft-worker", default=None, help=argparse.SUPPRESS)  # internal: result path
    return ap.parse_args(argv)


def build_av(args: argparse.Namespace):
    """The baseline AV on the target, frozen weights in bf16 as a CUDA trial holds them."""
    from nla_variants.target import resolve_model
    from nla_variants.variants.large_models import frozen_weight_dtype
    from nla_variants.variants.registry import BuildContext, build

    source = resolve_model(args.model)
    layer = args.layer or round(source.num_layers * 2 / 3)
    ctx = BuildContext(
        source,
        layer,
        source.d_model,
        data_norm=4.0 * math.sqrt(source.d_model),
        frozen_dtype=frozen_weight_dtype("cuda", "bf16-mixed"),
    )
    return build("av", {"finetune": args.finetune}, ctx), source


def synthetic_rows(n: int, d: int, words: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    text = " ".join(["the model reads a story about a harbor"] * (words // 8 + 1))
    return [{"vector": torch.randn(d, generator=g) * 50, "explanation": text} for _ in range(n)]


def collate(items: list[dict]) -> dict:
    return {
        "vectors": torch.stack([i["vector"] for i in items]),
        "explanations": [i["explanation"] for i in items],
    }


def step_flops(av, explanations: list[str]) -> tuple[float, float, int]:
    """(MFU FLOPs, LoRA-aware FLOPs, tokens) of one AV SFT step on these rows (module docstring)."""
    from train_throughput import attention_flops, params

    responses = av.encode_responses(explanations)
    lengths = [len(av.prompt_ids) + len(r) for r in responses]
    tokens, resp = sum(lengths), sum(map(len, responses))
    blocks = params(av._decoder.layers)
    head = av._head.weight.numel()
    trainable = sum(p.numel() for p in av._decoder.layers.parameters() if p.requires_grad)
    frozen = blocks - trainable
    attn = attention_flops(len(av._decoder.layers), av._head.weight.shape[1], lengths)
    mfu = 6 * blocks * tokens + 6 * head * resp + attn
    hfu = (6 * trainable + 4 * frozen) * tokens + 6 * head * resp + attn
    return float(mfu), float(hfu), tokens


def sft_worker(args: argparse.Namespace) -> None:
    """AV SFT through a Lightning Trainer (ddp when devices > 1); rank 0 writes its timings.
    Lightning relaunches this same command line for the other ranks."""
    import lightning as L

    from nla_variants.training.warm_start import AVWarmStart
    from nla_variants.variants.large_models import enable_gradient_checkpointing

    L.seed_everything(0, verbose=False)
    av, source = build_av(args)
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(av)
    total = args.warmup + args.steps
    rows = synthetic_rows(args.batch * args.devices * total, source.d_model, args.response_tokens)
    loader = torch.utils.data.DataLoader(rows, batch_size=args.batch, collate_fn=collate)
    times: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    trainer = L.Trainer(
        accelerator="gpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        precision="bf16-mixed",
        max_steps=total,
        logger=False,
        callbacks=[Timer()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = AVWarmStart(av, 1e-5, 0.0, 1, total)
    trainer.fit(module, loader)
    if trainer.global_rank == 0:
        mfu, hfu, tokens = step_flops(av, [r["explanation"] for r in rows[: args.batch]])
        sec = sum(times[args.warmup :]) / max(1, len(times[args.warmup :]))
        result = {
            "devices": args.devices,
            "finetune": av.cfg.finetune,
            "seconds_per_step": sec,
            "tokens_per_s": tokens * args.devices / sec,
            "flops_per_s": mfu * args.devices / sec,
            "hfu_flops_per_s": hfu * args.devices / sec,
            "max_memory_gib": torch.cuda.max_memory_allocated() / 1024**3,
        }
        Path(args.sft_worker).write_text(json.dumps(result))


def run_sft(args: argparse.Namespace, devices: int) -> dict:
    """The SFT worker in a fresh process (Lightning's DDP launcher re-runs its command line)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sft.json"
        argv = []
        for key, value in vars(args).items():
            if key in ("devices", "sft_worker") or value is None or value is False:
                continue
            flag = "--" + key.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        cmd = [sys.executable, __file__, *argv, "--devices", str(devices), "--sft-worker", str(out)]
        subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        return json.loads(out.read_text())


def run_rollout(args: argparse.Namespace) -> dict:
    av, source = build_av(args)
    av = av.to("cuda").eval()
    vectors = torch.randn(args.rollout_batch, source.d_model, device="cuda") * 50
    with torch.autocast("cuda", dtype=torch.bfloat16):
        av.generate(vectors[:1], max_new_tokens=8, temperature=1.0)  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        _, toks = av.generate(
            vectors, max_new_tokens=args.tokens, temperature=1.0, num_samples=args.group
        )
        torch.cuda.synchronize()
        sec = time.perf_counter() - t
    n = sum(map(len, toks))
    return {
        "rows": args.rollout_batch * args.group,
        "tokens": n,
        "seconds": sec,
        "tokens_per_s": n / sec,
    }


def main() -> None:
    args = parse_args()
    if not torch.cuda.is_available():
        sys.exit(
            "benchmarks/gpu.py: no CUDA device here (it measures GPU throughput); run it on a machine with an NVIDIA GPU"
        )
    if args.sft_worker:
        sft_worker(args)
        return
    name = torch.cuda.get_device_name(0)
    peak = peak_tflops(name, args.peak_tflops)
    results: dict = {"device": name, "peak_bf16_tflops": peak, "model": args.model, "sft": {}}
    for n in sorted({1, args.devices}):
        r = run_sft(args, n)
        if peak:
            r["mfu"] = r["flops_per_s"] / (peak * 1e12 * n)
            r["hfu_lora"] = r["hfu_flops_per_s"] / (peak * 1e12 * n)
        results["sft"][str(n)] = r
    roll = run_rollout(args)
    results["rollout"] = {
        "1": roll,
        str(args.devices): {
            **roll,
            "tokens_per_s": roll["tokens_per_s"] * args.devices,
            "derived": "1-device x N",
        },
    }
    results["reference_mfu"] = REFERENCE_MFU
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"{name}, peak {peak} TFLOPS bf16, model {args.model}")
    print("| devices | AV SFT tok/s | MFU | s/step | rollout tok/s |")
    print("|---|---|---|---|---|")
    for n, r in results["sft"].items():
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else "n/a (--peak-tflops)"
        ro = results["rollout"][n]["tokens_per_s"]
        print(f"| {n} | {r['tokens_per_s']:.0f} | {mfu} | {r['seconds_per_step']:.3f} | {ro:.0f} |")
    print(f"reference: {REFERENCE_MFU:.0%} AV SFT MFU on H100; results in {args.out}")


if __name__ == "__main__":
    main()
