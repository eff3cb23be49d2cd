"""The full-size DiffusionGemma-26B-A4B architecture with random bf16 weights on one GPU: time per denoising step
against the floor of reading the weights it must read, and blocks/s and tokens/s at fixed step counts, for the
engine's loop (engine.denoise) and for transformers' `generate()`.

    python -m benchmarks.gpu.full_size [--steps 8,16,32] [--canvas 256] [--prompt 2048] [--out DIR]
        [--config full|small] [--cuda-graphs] [--quantize none|int8|int4]

Random weights are fine for speed (routing spreads over the experts as a trained router roughly does) and are
made on the GPU: the model is built on the meta device, its unique tensors are allocated on the GPU (encoder and
decoder share every weight, so the tying is kept: a plain `to_empty` would allocate them twice, ~100 GB) and
filled by the model's own `_init_weights`. `--quantize int8|int4`: weight-only, experts included
(engine.models.quantize), after the bf16 build, so the card needs the bf16 size free; the floor is then the
quantized bytes. `--config small` is a tiny architecture that runs on a CPU in seconds (the tests use it).
Results go to stdout as a markdown table and to DIR/full_size.json.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion, DiffusionGemmaTextConfig

from engine.denoise import DenoiseSettings, denoise
from engine.families.diffusion_gemma import encode_prompts
from engine.models.configs import _TINY_VISION
from engine.models.quantize import KINDS, quantize_model
from engine.prompt import PromptBatch

# google/diffusiongemma-26B-A4B (Gemma 4 26B-A4B's text stack). DiffusionGemmaTextConfig's own defaults describe a
# dense 2304-wide model with no experts, not this one; what they do fit is kept (30 layers, 5 sliding : 1 global,
# head_dim 256, vocab 262144, softcapping 30, RoPE) and the rest is set here. 25.25B parameters, ~3.9B active.
FULL = dict(
    hidden_size=2816,
    intermediate_size=2112,
    num_hidden_layers=30,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=256,
    global_head_dim=512,
    num_global_key_value_heads=2,
    num_experts=128,
    top_k_experts=8,
    moe_intermediate_size=704,
    sliding_window=1024,
    vocab_size=262_144,
    max_position_embeddings=262_144,
)
# The same shape in miniature: every code path of the full model, seconds on a CPU.
SMALL = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    global_head_dim=32,
    num_global_key_value_heads=1,
    num_experts=8,
    top_k_experts=2,
    moe_intermediate_size=32,
    sliding_window=64,
    vocab_size=512,
    max_position_embeddings=4096,
    layer_types=["sliding_attention", "full_attention"],
)
H100_BANDWIDTH = 3.35e12  # bytes/s, the datasheet figure the issue quotes (HBM3, SXM)


def build_config(name: str, canvas: int) -> DiffusionGemmaConfig:
    text = DiffusionGemmaTextConfig(**(FULL if name == "full" else SMALL))
    return DiffusionGemmaConfig(text_config=text, vision_config=dict(_TINY_VISION), canvas_length=canvas)


@dataclass(frozen=True)
class Floor:
    """Bytes one denoising step must read at least, by part, and the time that takes at a bandwidth."""

    attention: int  # q/k/v/o projections and their norms, all layers
    dense_mlp: int  # every layer's dense MLP beside its experts
    experts_active: int  # top_k of num_experts per layer: a single token's share ("A4B")
    experts_hit: int  # the experts a canvas of `canvas` tokens is expected to touch, uniform routing
    router_and_norms: int
    self_conditioning: int  # the decoder's self-conditioning MLP
    embedding_reads: int  # lm_head over the canvas + softmax(previous logits) @ embedding: the tied matrix, twice
    kv_cache: int  # the encoder cache the canvas attends to (sliding layers see at most their window)
    total_weights: int  # every unique weight once (vision tower excluded)

    def step_bytes(self) -> int:
        """The floor: everything a step reads, experts as a canvas hits them."""
        parts = (self.attention, self.dense_mlp, self.experts_hit, self.router_and_norms, self.self_conditioning)
        return sum(parts) + self.embedding_reads + self.kv_cache

    def active_bytes(self) -> int:
        """As if only top_k experts were read: the single-token floor, below what a 256-token canvas needs."""
        return self.step_bytes() - self.experts_hit + self.experts_active


def weight_floor(model: nn.Module, canvas: int, prompt: int) -> Floor:
    """Bytes per part, read off the model's own (possibly meta, possibly quantized) tensors so tying and dtypes
    count right."""
    text = model.config.text_config
    names = ("attention", "dense_mlp", "experts", "router_and_norms", "self_conditioning", "embedding")
    parts = dict.fromkeys(names, 0)
    quantized = ((name, t) for name, t in model.named_buffers() if name.endswith(("codes", "scales")))
    for name, param in [*model.named_parameters(), *quantized]:  # unique tensors: shared ones count once
        if "vision" in name:
            continue
        size = param.numel() * param.element_size()
        if "experts" in name:
            parts["experts"] += size
        elif "self_attn" in name:
            parts["attention"] += size
        elif ".mlp." in name:
            parts["dense_mlp"] += size
        elif "self_conditioning" in name:
            parts["self_conditioning"] += size
        elif "embed_tokens" in name or "lm_head" in name:
            parts["embedding"] += size
        else:
            parts["router_and_norms"] += size
    share_hit = 1 - (1 - text.top_k_experts / text.num_experts) ** canvas  # P(an expert is hit by some token)
    element = next(model.parameters()).element_size()
    kv = 0
    for index, kind in enumerate(text.layer_types):
        layer = text.per_layer_config[index]
        seen = min(prompt, text.sliding_window) if kind == "sliding_attention" else prompt
        kv += 2 * seen * layer.num_key_value_heads * layer.head_dim * element  # keys and values (k=v still stores both)
    return Floor(
        attention=parts["attention"],
        dense_mlp=parts["dense_mlp"],
        experts_active=round(parts["experts"] * text.top_k_experts / text.num_experts),
        experts_hit=round(parts["experts"] * share_hit),
        router_and_norms=parts["router_and_norms"],
        self_conditioning=parts["self_conditioning"],
        embedding_reads=2 * parts["embedding"],
        kv_cache=kv,
        total_weights=sum(parts.values()),
    )


def materialize(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Meta tensors -> uninitialised `device` tensors, one per unique tensor, then the model's own cheap init."""
    fresh: dict[int, nn.Parameter] = {}
    keep_alive = []  # the meta originals, so no id is reused while the map is built
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in fresh:
                keep_alive.append(param)
                kind = dtype if param.is_floating_point() else param.dtype
                fresh[id(param)] = nn.Parameter(torch.empty(param.shape, device=device, dtype=kind), False)
            module._parameters[name] = fresh[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None:  # rotary tables and scales: small, filled below, kept in their own dtype
                module._buffers[name] = torch.empty(buffer.shape, device=device, dtype=buffer.dtype)
    with torch.no_grad():
        for name, module in model.named_modules():
            if "vision" not in name:  # the tower never runs here, and its axial RoPE has no init function
                model._init_weights(module)
        for name, buffer in model.named_buffers():
            if name.endswith("layer_scalar"):  # _init_weights resets the decoder's, not the encoder's
                buffer.fill_(1.0)
    return model.eval()


def random_model(config: DiffusionGemmaConfig, device: torch.device, dtype: torch.dtype):
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(config)
    return materialize(model, device, dtype)


def random_prompt(vocab: int, prompt: int, canvas: int, device: torch.device) -> PromptBatch:
    """One row of random token ids at contiguous positions, the canvas right after: generate()'s layout too."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (1, prompt), generator=generator).to(device)
    return PromptBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids, dtype=torch.bool),
        position_ids=torch.arange(prompt, device=device)[None],
        canvas_position_ids=torch.arange(prompt, prompt + canvas, device=device)[None],
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(action: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        began = time.perf_counter()
        action()
        _sync(device)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def copy_bandwidth(device: torch.device) -> float | None:
    """Bytes/s of a large device-to-device copy (read + write), the measured ceiling on this card."""
    if device.type != "cuda":
        return None
    source = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    for _ in range(3):
        target.copy_(source)
    ms = _median_ms(lambda: target.copy_(source), 10, device)
    return 2 * source.numel() / (ms / 1000)


def time_engine(model, batch: PromptBatch, steps: int, repeats: int, device: torch.device) -> dict:
    """Prefill, then exactly `steps` denoising steps on the cached prompt (confidence_threshold=0: no early stop)."""
    settings = DenoiseSettings(max_steps=steps, confidence_threshold=0.0)
    cache = encode_prompts(model, batch)
    denoise(model, batch, settings, [0], cache=cache)  # warm-up (and compilation, with --cuda-graphs)
    prefill_ms = _median_ms(lambda: encode_prompts(model, batch), repeats, device)
    block_ms = _median_ms(lambda: denoise(model, batch, settings, [0], cache=cache), repeats, device)
    return {"prefill_ms": prefill_ms, "block_ms": block_ms, "step_ms": block_ms / steps}


def time_generate(model, batch: PromptBatch, steps: int, repeats: int, device: torch.device, static: bool) -> dict:
    """transformers' generate() for one block of the canvas, prefill included, no adaptive stopping."""
    canvas = batch.canvas_position_ids.shape[1]
    extra = {"cache_implementation": "static"} if static else {}

    def run():
        return model.generate(
            batch.input_ids,
            max_new_tokens=canvas,
            max_denoising_steps=steps,
            stability_threshold=None,
            confidence_threshold=None,
            **extra,
        )

    run()
    return {"total_ms": _median_ms(run, repeats, device)}


def markdown(report: dict) -> str:
    floor_ms = report["floor"]["step_ms_at_measured"] or report["floor"]["step_ms_at_3.35TB/s"]
    lines = [
        f"{report['config']} config, {report['params_billion']:.2f}B parameters, {report['dtype']} on "
        f"{report['device']},"
        f" prompt {report['prompt']} tokens, canvas {report['canvas']}; step floor {floor_ms:.2f} ms"
        f" ({report['floor']['step_gb']:.1f} GB a step)",
        "",
        "| steps | engine step ms | vs floor | engine prefill ms | engine block ms | blocks/s | tokens/s "
        "| tokens/s with prefill | generate() ms (with prefill) | generate() tokens/s | engine vs generate() |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        e, g = row["engine"], row.get("generate", {})
        total = e["prefill_ms"] + e["block_ms"]
        canvas = report["canvas"]
        g_ms = g.get("total_ms")
        lines.append(
            f"| {row['steps']} | {e['step_ms']:.2f} | {e['step_ms'] / floor_ms:.2f}x | {e['prefill_ms']:.1f} "
            f"| {e['block_ms']:.1f} | {1000 / e['block_ms']:.1f} | {1000 * canvas / e['block_ms']:.0f} "
            f"| {1000 * canvas / total:.0f} | {f'{g_ms:.1f}' if g_ms else g.get('error', '-')} "
            f"| {f'{1000 * canvas / g_ms:.0f}' if g_ms else '-'} | {f'{g_ms / total:.2f}x' if g_ms else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=("full", "small"), default="full")
    parser.add_argument("--steps", default="8,16,32", help="comma-separated fixed step counts")
    parser.add_argument("--canvas", type=int, help="canvas tokens (default 256; 32 with --config small)")
    parser.add_argument("--prompt", type=int, help="prompt tokens (default 2048; 96 with --config small)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cuda-graphs", action="store_true", help="torch.compile(mode='reduce-overhead')")
    parser.add_argument("--quantize", choices=tuple(KINDS), default="none")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (CPU runs only)")
    parser.add_argument("--no-generate", action="store_true", help="time the engine only")
    parser.add_argument("--out", type=Path, help="directory for full_size.json")
    args = parser.parse_args(argv)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    small = args.config == "small"
    canvas = args.canvas or (32 if small else 256)
    prompt = args.prompt or (96 if small else 2048)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 matmuls crawl on CPUs
    steps_list = [int(s) for s in args.steps.split(",")]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)

    config = build_config(args.config, canvas)
    with torch.device("meta"):
        skeleton = DiffusionGemmaForBlockDiffusion(config).to(dtype)
    params = sum(p.numel() for n, p in skeleton.named_parameters() if "vision" not in n)
    bf16_bytes = weight_floor(skeleton, canvas, prompt).total_weights
    floor = weight_floor(quantize_model(skeleton, args.quantize), canvas, prompt)
    del skeleton
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if bf16_bytes > 0.92 * free:  # built in bf16, then quantized
            sys.exit(
                f"out of GPU memory: the weights alone take {bf16_bytes / 1e9:.1f} GB before quantizing and "
                f"{free / 1e9:.1f} GB are free; use a larger card (nvidia-h200) or --config small"
            )
    bandwidth = copy_bandwidth(device)
    report = {
        "config": args.config,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "params_billion": params / 1e9,
        "canvas": canvas,
        "prompt": prompt,
        "steps": steps_list,
        "cuda_graphs": args.cuda_graphs,
        "quantize": args.quantize,
        "floor": {
            **asdict(floor),
            "step_gb": floor.step_bytes() / 1e9,
            "active_gb": floor.active_bytes() / 1e9,
            "measured_copy_bandwidth": bandwidth,
            "step_ms_at_3.35TB/s": 1000 * floor.step_bytes() / H100_BANDWIDTH,
            "active_ms_at_3.35TB/s": 1000 * floor.active_bytes() / H100_BANDWIDTH,
            "step_ms_at_measured": 1000 * floor.step_bytes() / bandwidth if bandwidth else None,
        },
        "results": [],
    }
    try:
        began = time.perf_counter()
        model = random_model(config, device, dtype)
        report["build_seconds"] = time.perf_counter() - began
        quantize_model(model, args.quantize)
        if args.cuda_graphs:
            # Our loop: the forward compiled with CUDA graphs (two graphs: first step without self-conditioning
            # logits, the rest with). The DynamicCache's tensors are graph inputs, copied in at each replay.
            model.forward = torch.compile(model.forward, mode="reduce-overhead", dynamic=False)
        batch = random_prompt(config.text_config.vocab_size, prompt, canvas, device)
        for steps in steps_list:
            row = {"steps": steps, "engine": time_engine(model, batch, steps, args.repeats, device)}
            if not args.no_generate:
                try:
                    # --cuda-graphs: generate()'s own compiled path needs its static cache, which 5.23 gets wrong
                    # once the prompt passes the sliding window: its output is wrong there, its timing still counts.
                    row["generate"] = time_generate(model, batch, steps, args.repeats, device, args.cuda_graphs)
                except torch.OutOfMemoryError:
                    raise
                except Exception as err:  # its compiled path is brittle; one failure must not lose the others
                    row["generate"] = {"error": f"{type(err).__name__}: {err}"[:300]}
            report["results"].append(row)
            print(f"  {steps} steps: done", flush=True)
    except torch.OutOfMemoryError as err:
        report["error"] = f"out of GPU memory: {err}"[:500]
        print(
            f"out of GPU memory while building or running the {args.config} model ({floor.total_weights / 1e9:.1f} GB"
            " of weights): try a larger card (nvidia-h200), fewer prompt tokens (--prompt), or --config small",
            file=sys.stderr,
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "full_size.json").write_text(json.dumps(report, indent=2))
    f, text = report["floor"], config.text_config
    print(
        f"\nfloor per step: {f['step_gb']:.2f} GB = attention {f['attention'] / 1e9:.2f} + dense MLP "
        f"{f['dense_mlp'] / 1e9:.2f} + experts hit by a {canvas}-token canvas {f['experts_hit'] / 1e9:.2f} "
        f"(of {f['total_weights'] / 1e9:.2f} GB weights) + router/norms {f['router_and_norms'] / 1e9:.3f} + "
        f"self-conditioning {f['self_conditioning'] / 1e9:.3f} + embedding read twice {f['embedding_reads'] / 1e9:.2f}"
        f" + KV cache {f['kv_cache'] / 1e9:.3f}; {f['step_ms_at_3.35TB/s']:.2f} ms at 3.35 TB/s"
        + (f", {f['step_ms_at_measured']:.2f} ms at the measured {bandwidth / 1e12:.2f} TB/s" if bandwidth else "")
        + f". Only top-{text.top_k_experts} of {text.num_experts} experts (one token's share): {f['active_gb']:.2f} GB,"
        f" {f['active_ms_at_3.35TB/s']:.2f} ms."
    )
    if report["results"]:
        print()
        print(markdown(report))
    if "error" in report:
        sys.exit(1)
    return report


if __name__ == "__main__":
    main()
