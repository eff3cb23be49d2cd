"""Speed on the CPU: the engine's denoising loop against transformers' own `generate()` on the same model, and
against an autoregressive model of the same size. One process, interleaved runs, medians.

    python -m benchmarks.speed [--canvas 24,64,128] [--steps 16] [--points 6] [--runs 1] [--threads 2]

Inputs are real FIM prompts: HumanEval single-line infilling tasks, tokenized and cut to the model's limits, laid
out with engine.prompt. Each completion is timed from the prompt ids to the final canvas, prefill included.

- **engine**: `engine.families.diffusion_gemma.encode_prompts` + `denoise` (what `Engine.complete` runs per canvas).
- **generate()**: `DiffusionGemmaForBlockDiffusion.generate()` on the same model and the same prompt ids, with the
  model's `canvas_length` set to the canvas and `max_new_tokens` equal to it (one block). generate() cannot take
  the suffix-after-canvas positions (it numbers the prompt 0..L-1 and puts the canvas after it), so it gets the
  same ids at contiguous positions: the same work, a different layout.
- **fixed** rows: both run exactly `--steps` denoising steps (engine: confidence_threshold=0 never stops early;
  generate(): stability and confidence thresholds unset, so no adaptive stopping criterion is built).
  **adaptive** rows: both with their default stopping rules (stable argmax and mean entropy < 0.005), `--steps`
  at most.
- **autoregressive**: `Gemma4ForCausalLM` built by `engine.training.ar_fim.build_ar_config` for the same
  architecture (random weights, or `--ar-weights` from an ar_fim run), greedy `generate()` with its KV cache,
  exactly canvas-many new tokens after the same prefix and suffix in PSM FIM text (2 tokens longer).

Tokens per forward: canvas tokens committed per denoiser forward, the canvas being cut after its first EOS
(generate()'s own definition of the figure), divided by the denoising steps the row took.
"""

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DiffusionGemmaForBlockDiffusion, Gemma4ForCausalLM

from benchmarks.quality import DATA, load_tasks
from engine.denoise import DenoiseSettings, denoise
from engine.families.diffusion_gemma import encode_prompts
from engine.prompt import SpecialTokens, build_prompt, collate_prompts


@dataclass(frozen=True)
class Point:
    """One infilling point, already tokenized and cut to the model's limits."""

    prefix_ids: list[int]
    suffix_ids: list[int]


@dataclass(frozen=True)
class DiffusionFigures:
    canvas: int
    mode: str  # "fixed" or "adaptive"
    engine_ms: float  # median time per completion
    generate_ms: float
    engine_tpf: float  # median canvas tokens committed per forward
    generate_tpf: float
    engine_steps: float  # mean denoising steps taken
    generate_steps: float
    position_agreement: float  # share of canvas positions where the two final canvases agree
    middle_agreement: float  # share of completions whose middles (up to EOS) are identical

    @property
    def speedup(self) -> float:
        return self.generate_ms / self.engine_ms


@dataclass(frozen=True)
class AutoregressiveFigures:
    canvas: int
    engine_ms: float  # the engine at fixed steps, same points, timed alongside
    ar_ms: float

    @property
    def speedup(self) -> float:
        return self.ar_ms / self.engine_ms


def load_points(encode: Callable[[str], list[int]], count: int, max_prefix: int, max_suffix: int, seed: int = 0):
    """`count` random HumanEval single-line tasks, prefix cut to its last `max_prefix` tokens, suffix to its first."""
    chosen = random.Random(seed).sample(load_tasks("single", DATA, None), count)
    return [Point(encode(t["prompt"])[-max_prefix:], encode(t["suffix"])[:max_suffix]) for t in chosen]


def committed(canvas: list[int], special: SpecialTokens) -> list[int]:
    """The canvas up to and including its first EOS, padding dropped: what a completion commits."""
    end = canvas.index(special.eos) + 1 if special.eos in canvas else len(canvas)
    return [t for t in canvas[:end] if t != special.pad]


def _timed(action: Callable[[], list[int]]) -> tuple[float, list[int]]:
    began = time.perf_counter()
    result = action()
    return (time.perf_counter() - began) * 1000, result


def compare_generate(
    model: DiffusionGemmaForBlockDiffusion,
    special: SpecialTokens,
    layout: str,
    points: list[Point],
    canvas: int,
    steps: int,
    runs: int = 1,
    adaptive: bool = False,
) -> DiffusionFigures:
    """The engine's loop vs generate() on the same prompts, canvas and step budget, interleaved point by point."""
    fixed = {} if adaptive else {"confidence_threshold": 0.0}
    settings = DenoiseSettings(max_steps=steps, **fixed)
    stopping = {} if adaptive else {"stability_threshold": None, "confidence_threshold": None}
    saved_canvas = model.config.canvas_length
    model.config.canvas_length = canvas  # generate() reads the block length from the model's config
    times = {"engine": [], "generate": []}
    tpf = {"engine": [], "generate": []}
    taken = {"engine": [], "generate": []}
    same_positions, same_middles, total = 0, 0, 0
    try:
        for run in range(runs):
            for index, point in enumerate(points):
                prompt = build_prompt(point.prefix_ids, point.suffix_ids, canvas, layout, special)
                batch = collate_prompts([prompt], canvas, special.pad, str(model.device))
                seed = run * len(points) + index

                def ours(batch=batch, seed=seed) -> tuple[list[int], int]:
                    result = denoise(model, batch, settings, [seed], cache=encode_prompts(model, batch))
                    return result.tokens[0].tolist(), result.steps[0]

                def theirs(batch=batch, seed=seed) -> tuple[list[int], int]:
                    torch.manual_seed(seed)
                    out = model.generate(
                        batch.input_ids,
                        max_new_tokens=canvas,
                        max_denoising_steps=steps,
                        pad_token_id=special.pad,
                        eos_token_id=special.eos,
                        **stopping,
                    )
                    tokens = out.sequences[0, batch.input_ids.shape[1] :].tolist()
                    valid = sum(t != special.pad for t in tokens)
                    return tokens, round(valid / float(out.tokens_per_forward[0])) if valid else steps

                order = [("engine", ours), ("generate", theirs)]
                for name, action in order if seed % 2 == 0 else order[::-1]:  # alternate who goes first
                    ms, (tokens, took) = _timed(action)
                    times[name].append(ms)
                    taken[name].append(took)
                    tpf[name].append(len(committed(tokens, special)) / took)
                    if name == "engine":
                        engine_tokens = tokens
                    else:
                        generate_tokens = tokens
                same_positions += sum(a == b for a, b in zip(engine_tokens, generate_tokens, strict=True))
                same_middles += committed(engine_tokens, special) == committed(generate_tokens, special)
                total += 1
    finally:
        model.config.canvas_length = saved_canvas
    med = statistics.median
    return DiffusionFigures(
        canvas=canvas,
        mode="adaptive" if adaptive else "fixed",
        engine_ms=med(times["engine"]),
        generate_ms=med(times["generate"]),
        engine_tpf=med(tpf["engine"]),
        generate_tpf=med(tpf["generate"]),
        engine_steps=statistics.mean(taken["engine"]),
        generate_steps=statistics.mean(taken["generate"]),
        position_agreement=same_positions / (total * canvas),
        middle_agreement=same_middles / total,
    )


def compare_autoregressive(
    model: DiffusionGemmaForBlockDiffusion,
    ar_model: Gemma4ForCausalLM,
    special: SpecialTokens,
    layout: str,
    points: list[Point],
    canvas: int,
    steps: int,
    runs: int = 1,
) -> AutoregressiveFigures:
    """The engine (fixed steps) vs greedy autoregression writing canvas-many tokens, interleaved point by point."""
    settings = DenoiseSettings(max_steps=steps, confidence_threshold=0.0)
    engine_times, ar_times = [], []
    for run in range(runs):
        for index, point in enumerate(points):
            prompt = build_prompt(point.prefix_ids, point.suffix_ids, canvas, layout, special)
            batch = collate_prompts([prompt], canvas, special.pad, str(model.device))
            psm = build_prompt(point.prefix_ids, point.suffix_ids, 0, "fim_text", special).input_ids
            ids = torch.tensor([psm], device=ar_model.device)
            seed = run * len(points) + index
            engine_ms, _ = _timed(
                lambda b=batch, s=seed: denoise(model, b, settings, [s], cache=encode_prompts(model, b))
            )
            ar_ms, _ = _timed(
                lambda i=ids: ar_model.generate(
                    i, max_new_tokens=canvas, min_new_tokens=canvas, do_sample=False, pad_token_id=special.pad
                )
            )
            engine_times.append(engine_ms)
            ar_times.append(ar_ms)
    med = statistics.median
    return AutoregressiveFigures(canvas, med(engine_times), med(ar_times))


def build_ar_model(model: DiffusionGemmaForBlockDiffusion, special: SpecialTokens, weights: Path | None):
    """The same-size autoregressive baseline: random weights unless an ar_fim checkpoint is given."""
    from engine.models.configs import ARCHITECTURES, TinyArchitecture
    from engine.training.ar_fim import build_ar_config

    stored = getattr(model.config, "blockfill_architecture", None)
    arch = TinyArchitecture(**stored) if stored else ARCHITECTURES["blockfill-tiny"]
    ids = {"pad": special.pad, "eos": special.eos, "bos": special.bos}
    torch.manual_seed(0)
    ar_model = Gemma4ForCausalLM(build_ar_config(arch, model.config.text_config.vocab_size, ids))
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        ar_model.load_state_dict(state.get("model", state))
    ar_model.generation_config.cache_implementation = None  # the default dynamic KV cache
    return ar_model.to(model.device).eval()


def markdown(diffusion: list[DiffusionFigures], autoregressive: list[AutoregressiveFigures]) -> str:
    lines = [
        "| canvas | steps | engine ms | generate() ms | speed-up | tok/forward engine / generate() "
        "| steps engine / generate() | same positions | same middles |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in diffusion:
        lines.append(
            f"| {f.canvas} | {f.mode} | {f.engine_ms:.0f} | {f.generate_ms:.0f} | {f.speedup:.2f}x "
            f"| {f.engine_tpf:.2f} / {f.generate_tpf:.2f} | {f.engine_steps:.1f} / {f.generate_steps:.1f} "
            f"| {f.position_agreement:.0%} | {f.middle_agreement:.0%} |"
        )
    lines += [
        "",
        "| canvas (= new tokens) | engine ms (fixed steps) | autoregressive ms | engine tok/s | autoregressive tok/s "
        "| engine vs AR |",
        "|---|---|---|---|---|---|",
    ]
    for f in autoregressive:
        lines.append(
            f"| {f.canvas} | {f.engine_ms:.0f} | {f.ar_ms:.0f} | {1000 * f.canvas / f.engine_ms:.0f} "
            f"| {1000 * f.canvas / f.ar_ms:.0f} | {f.speedup:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--canvas", default="24,64,128", help="comma-separated canvas sizes")
    parser.add_argument("--steps", type=int, default=16, help="denoising steps (fixed rows), at most (adaptive)")
    parser.add_argument("--points", type=int, default=6, help="HumanEval tasks, each one completion per run")
    parser.add_argument("--runs", type=int, default=1, help="passes over the points (medians over all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ar-weights", type=Path, help="an ar_fim state dict (runs/ar-baseline/last.pt)")
    parser.add_argument("--no-ar", action="store_true", help="skip the autoregressive comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from engine.config import EngineConfig
    from engine.infill import Engine

    engine = Engine(EngineConfig(model=args.model, device="cpu", threads=args.threads))
    loaded = engine.loaded
    limits = loaded.limits
    points = load_points(engine._encode, args.points, limits.max_prefix_tokens, limits.max_suffix_tokens)
    canvases = [int(c) for c in args.canvas.split(",")]
    model, special, layout = loaded.model, loaded.special, loaded.layout

    warm = points[:1]
    compare_generate(model, special, layout, warm, canvases[0], 2)  # first-call costs out of the medians
    diffusion = []
    for canvas in canvases:
        for adaptive in (False, True):
            diffusion.append(compare_generate(model, special, layout, points, canvas, args.steps, args.runs, adaptive))
            print(f"  canvas {canvas} {diffusion[-1].mode}: done", flush=True)
    autoregressive = []
    if not args.no_ar:
        ar_model = build_ar_model(model, special, args.ar_weights)
        compare_autoregressive(model, ar_model, special, layout, warm, canvases[0], 2)
        for canvas in canvases:
            autoregressive.append(
                compare_autoregressive(model, ar_model, special, layout, points, canvas, args.steps, args.runs)
            )
            print(f"  canvas {canvas} autoregressive: done", flush=True)
        ar_params = sum(p.numel() for p in ar_model.parameters())
    diffusion_params = sum(p.numel() for n, p in model.named_parameters() if "vision" not in n)
    print()
    print(
        f"model {loaded.name} ({diffusion_params / 1e6:.1f}M text parameters), {args.points} HumanEval single-line "
        f"points x {args.runs} run(s), {args.steps} steps, {args.threads} threads, prompt "
        f"{statistics.median(len(p.prefix_ids) + len(p.suffix_ids) + 2 for p in points):.0f} tokens (median)"
    )
    if autoregressive:
        weights = args.ar_weights or "random"
        print(f"autoregressive baseline: {ar_params / 1e6:.1f}M parameters, {weights} weights")
    print()
    print(markdown(diffusion, autoregressive))


if __name__ == "__main__":
    main()
