"""What a forward of N new tokens costs a causal model over a KV cache, in fp32 and with int8 weights.

    python -m benchmarks.forward_cost [--model qwen2.5-coder-0.5b] [--threads 1] [--tokens 1,5,9]

Drafting pays only when a forward that settles several tokens costs little more than one: this measures that
ratio on this machine, side by side for fp32, torch's weight-only int8 kernel (`_weight_int8pack_mm`, per-channel
scales on every `nn.Linear`) and torch's dynamic int8 (`quantize_dynamic`: per-channel int8 weights, activations
quantized per forward, fbgemm's int8 matrix products), one after the other in one process. Speed is worth having
only at equal quality, so each int8 arm also reports how often its greedy next token equals fp32's over a real
source file read left to right (the engine's own `engine/infill.py`, 400 tokens).
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from engine.models.loading import load_model

PROMPT_TOKENS = 200


class WeightOnlyInt8(nn.Module):
    """`nn.Linear` with int8 weights and fp32 activations (torch's CPU kernel)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach()
        scale = weight.abs().amax(1).clamp(min=1e-8) / 127  # [out]
        self.register_buffer("weight", (weight / scale[:, None]).round().clamp(-128, 127).to(torch.int8))
        self.register_buffer("scale", scale.float())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), self.weight, self.scale)
        out = out.reshape(*x.shape[:-1], -1)
        return out if self.bias is None else out + self.bias


@torch.inference_mode()
def median_ms(lm: nn.Module, new_tokens: int, runs: int = 5) -> float:
    cache = DynamicCache(config=lm.config)
    lm(input_ids=torch.randint(100, 5000, (1, PROMPT_TOKENS)), past_key_values=cache, logits_to_keep=1)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        lm(input_ids=torch.full((1, new_tokens), 7), past_key_values=cache)
        times.append(1000 * (time.perf_counter() - began))
        cache.crop(-new_tokens)
    return statistics.median(times)


def dynamic_int8(lm: nn.Module) -> nn.Module:
    """A copy of `lm` with torch's dynamic int8 on every `nn.Linear` (per-channel weight scales)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    return quantize_dynamic(lm, {nn.Linear: per_channel_dynamic_qconfig}, inplace=False)


@torch.inference_mode()
def next_token_agreement(lm: nn.Module, reference: torch.Tensor, ids: torch.Tensor) -> float:
    """Share of positions where `lm`'s greedy next token equals the reference's ([T] argmax ids)."""
    return float((lm(input_ids=ids).logits[0].argmax(-1) == reference).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", default="1,5,9")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    counts = [int(n) for n in args.tokens.split(",")]
    loaded = load_model(args.model, "cpu")
    lm = loaded.model
    text = (Path(__file__).resolve().parents[1] / "engine" / "infill.py").read_text()
    ids = torch.tensor([loaded.tokenizer(text, add_special_tokens=False)["input_ids"][:400]])
    with torch.inference_mode():
        reference = lm(input_ids=ids).logits[0].argmax(-1)  # [T]
    fp32 = {n: median_ms(lm, n) for n in counts}
    dynamic = dynamic_int8(lm)
    dynamic_ms = {n: median_ms(dynamic, n) for n in counts}
    dynamic_agreement = next_token_agreement(dynamic, reference, ids)
    del dynamic
    for module in list(lm.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, WeightOnlyInt8(child))
    int8 = {n: median_ms(lm, n) for n in counts}
    int8_agreement = next_token_agreement(lm, reference, ids)
    print(f"{args.model}, {args.threads} thread(s), a forward over a {PROMPT_TOKENS}-token cache (median ms):")
    for n in counts:
        print(
            f"  {n} new: fp32 {fp32[n]:.0f} ({fp32[n] / fp32[counts[0]]:.2f}x), weight-only int8 {int8[n]:.0f}, "
            f"dynamic int8 {dynamic_ms[n]:.0f} ({fp32[n] / dynamic_ms[n]:.2f}x faster than fp32)"
        )
    print(
        f"  greedy next token equal to fp32's over {ids.shape[1]} tokens of engine/infill.py: weight-only int8 "
        f"{100 * int8_agreement:.1f} %, dynamic int8 {100 * dynamic_agreement:.1f} %"
    )


if __name__ == "__main__":
    main()
