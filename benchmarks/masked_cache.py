"""Masked diffusion: approximate caching of the prefix and suffix (Fast-dLLM's dual cache) against recomputing the
whole sequence every step, on the same Dream-layout model, holes and seeds.

A random Dream-layout checkpoint (tests/diffusion_checkpoints.py) with a Qwen2 graph of the given width and depth;
HumanEval-like holes: a prefix and a suffix of `--context` tokens each around a `--canvas`-token canvas. Reports
ms per hole and the share of canvas tokens on which the two agree (random weights: speed, not quality).

    PYTHONPATH=. python benchmarks/masked_cache.py --hidden 512 --layers 8 --context 256 --canvas 32
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from engine.denoise import DenoiseSettings, denoise
from engine.families.masked_diffusion import MaskedDiffusion
from engine.models.loading import load_model
from engine.prompt import build_prompt, collate_prompts

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.diffusion_checkpoints import write_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--context", type=int, default=256, help="prefix tokens, and as many suffix tokens")
    parser.add_argument("--canvas", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--holes", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = [f"def f{i}(x):\n    return x + {i}\n" for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        config = Qwen2Config(
            vocab_size=300, hidden_size=args.hidden, intermediate_size=args.hidden * 3, num_hidden_layers=args.layers,
            num_attention_heads=args.hidden // 64, num_key_value_heads=2, tie_word_embeddings=False,
        )  # fmt: skip
        directory = write_checkpoint(Path(tmp), "dream", texts, model=Qwen2ForCausalLM(config))
        loaded = load_model(str(directory), device="cpu")
    rng = random.Random(0)
    settings = DenoiseSettings(max_steps=args.steps, sampler="confidence")
    timings: dict[bool, list[float]] = {True: [], False: []}
    agree, total = 0, 0
    for hole in range(args.holes):
        prefix = [rng.randrange(10, 290) for _ in range(args.context)]
        suffix = [rng.randrange(10, 290) for _ in range(args.context)]
        prompt = build_prompt(prefix, suffix, args.canvas, "canvas_between", loaded.special)
        batch = collate_prompts([prompt], args.canvas, loaded.special.pad)
        results = {}
        for cached in (True, False):
            family = MaskedDiffusion(loaded.model, loaded.mask_token_id, approximate_cache=cached)
            began = time.perf_counter()
            results[cached] = denoise(family, batch, settings, [hole]).tokens
            timings[cached].append((time.perf_counter() - began) * 1000)
        agree += int((results[True] == results[False]).sum())
        total += args.canvas
    print(f"model: Qwen2 graph, width {args.hidden}, {args.layers} layers; context {args.context}+{args.context}, "
          f"canvas {args.canvas}, {args.steps} steps, confidence sampler, 1 thread, {args.holes} holes")  # fmt: skip
    for cached, label in ((False, "recompute everything"), (True, "approximate prefix/suffix cache")):
        print(f"{label:32} {statistics.median(timings[cached]):8.0f} ms a hole (median)")
    print(f"tokens equal between the two: {agree / total:.1%}")


if __name__ == "__main__":
    main()
