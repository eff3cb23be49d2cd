"""Bytes of DiffusionGemma-26B-A4B's weights by dtype, in bf16 and quantized to int8 and int4, without the weights.

    python -m benchmarks.weight_memory [--config full|small] [--kinds none,int8,int4]

The full-size architecture (benchmarks/gpu/full_size.py's FULL) is built on the meta device and quantized there by
the engine's own code (engine.models.quantize): every tensor gets its real shape and dtype, nothing is allocated,
so a laptop measures what a GPU would hold. Counted once per unique tensor (encoder and decoder share every
weight); the vision tower is the one-layer stand-in of engine.models.configs, not the checkpoint's own.
"""

import argparse
import time

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from benchmarks.gpu.full_size import build_config
from engine.models.quantize import KINDS, quantize_model, weight_bytes


def measure(config_name: str, kind: str) -> dict[str, int]:
    """Bytes by dtype of the `config_name` model with `kind` weights."""
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(build_config(config_name, 256)).to(torch.bfloat16)
    return weight_bytes(quantize_model(model, kind))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=("full", "small"), default="full")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: none, int8, int4")
    args = parser.parse_args(argv)
    print("| weights | bytes by dtype | total GB | seconds (meta build + quantize) |\n|---|---|---|---|")
    for kind in args.kinds.split(","):
        began = time.perf_counter()
        totals = measure(args.config, kind)
        parts = ", ".join(f"{dtype} {size / 1e9:.3f} GB" for dtype, size in sorted(totals.items()))
        print(f"| {kind} | {parts} | {sum(totals.values()) / 1e9:.2f} | {time.perf_counter() - began:.1f} |")


if __name__ == "__main__":
    main()
