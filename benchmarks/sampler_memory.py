"""Peak memory the denoising loop adds at Gemma's 262,144-token vocabulary, where each [B, C, V] float32 tensor is
B x 256 MB at a 256-token canvas: what the sampler's temporaries cost beside a model whose own weights are small.

    python -m benchmarks.sampler_memory [--rows 4] [--canvas 256] [--steps 2]

A micro DiffusionGemma (64 wide) with the full vocabulary, random weights, CPU. Peak resident memory comes from
the kernel (ru_maxrss), so run it in a fresh process; the figure is the peak during `denoise` less the memory held
before it, in units of one [B, C, V] float32 tensor.
"""

import argparse
import resource

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from engine.denoise import DenoiseSettings, denoise
from engine.families.diffusion_gemma import encode_prompts
from engine.models.configs import ARCHITECTURES, build_config
from engine.prompt import PromptBatch

VOCAB = 262_144


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--no-copy-noise", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = build_config(ARCHITECTURES["micro"], VOCAB, {"pad": 0, "eos": 1, "bos": 2}, args.canvas, "fim_text")
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    ids = torch.randint(3, VOCAB, (args.rows, 64))
    batch = PromptBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids, dtype=torch.bool),
        position_ids=torch.arange(64).expand(args.rows, -1),
        canvas_position_ids=torch.arange(64, 64 + args.canvas).expand(args.rows, -1),
    )
    cache = encode_prompts(model, batch)
    settings = DenoiseSettings(max_steps=args.steps, confidence_threshold=0.0, no_copy_noise=args.no_copy_noise)
    before = resident_bytes()
    denoise(model, batch, settings, list(range(args.rows)), cache=cache)
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    unit = args.rows * args.canvas * VOCAB * 4
    print(f"rows {args.rows}, canvas {args.canvas}, vocab {VOCAB}: denoise added {added / 1e9:.2f} GB at its peak")
    print(f"= {added / unit:.1f} x one [B, C, V] float32 tensor ({unit / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
