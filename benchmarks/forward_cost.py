"""What a forward of N new tokens costs a causal model over a KV cache, in fp32 and with int8 weights.

    python -m benchmarks.forward_cost [--model qwen2.5-coder-0.5b] [--threads 1] [--tokens 1,5,9] [--arms ...]

Drafting pays only when a forward that settles several tokens costs little more than one: this measures that
ratio on this machine, side by side for fp32 (`nn.Linear`, and the engine's default: its weights prepacked for
oneDNN, engine.models.prepack), torch's weight-only int8 kernel (`_weight_int8pack_mm`, per-channel
scales on every `nn.Linear`) and torch's dynamic int8 (`quantize_dynamic`: per-channel int8 weights, activations
quantized per forward, fbgemm's int8 matrix products) on every Linear and as the engine's `quantize=int8-dynamic`
does it (engine.models.quantize.quantize_causal: down_proj and lm_head kept fp32), one after the other in one
process. Speed is worth having only at equal quality, so each int8 arm also reports how often its greedy next
token equals fp32's over a real source file (the engine's own `engine/infill.py`): read in one forward of 400
tokens (one activation scale for all of them, as a prefill or a reranking forward reads), and token by token over
a KV cache for 200 tokens (as decoding reads).

`--gguf FILE` adds llama.cpp on a GGUF file (the fetched base's Q4_K_M is in the download, not the cache: see
RESULTS.md), and `--requantize q8_0,q4_0` that file requantized by llama.cpp, with the same figures and the cost of
reading a prompt (prefill, ms a token). It needs llama-cpp-python, which compiles llama.cpp (12 minutes on CPU-2):
`pip install llama-cpp-python==0.3.36`.
"""

import argparse
import copy
import ctypes
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from engine.models.loading import load_model
from engine.models.prepack import prepack_linears
from engine.models.quantize import CAUSAL_KEEP_FP32, quantize_causal
from engine.prompt import encode_text

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


@torch.inference_mode()
def greedy_tokens(lm: nn.Module, ids: torch.Tensor, stepwise_from: int | None = None) -> torch.Tensor:
    """`lm`'s greedy next token at each position of `ids` [1, T]: from one forward, or from `stepwise_from` on one
    token a forward over a KV cache of what comes before ([T - stepwise_from] then)."""
    if stepwise_from is None:
        return lm(input_ids=ids).logits[0].argmax(-1)
    cache = DynamicCache(config=lm.config)
    lm(input_ids=ids[:, :stepwise_from], past_key_values=cache)
    return torch.stack(
        [
            lm(input_ids=ids[:, t : t + 1], past_key_values=cache).logits[0, -1].argmax()
            for t in range(stepwise_from, ids.shape[1])
        ]
    )


def agreement(lm: nn.Module, ids: torch.Tensor, references: dict) -> tuple[float, float]:
    """Shares of greedy next tokens equal to fp32's: in one forward, and token by token (see the docstring)."""
    whole = float((greedy_tokens(lm, ids) == references["whole"]).float().mean())
    stepwise = float((greedy_tokens(lm, ids[:, :STEPWISE_END], STEPWISE_FROM) == references["stepwise"]).float().mean())
    return whole, stepwise


STEPWISE_FROM, STEPWISE_END = 200, 400  # token-by-token agreement over these positions
PREFILL_TOKENS = (128, 512)  # prompt lengths whose reading is timed
TORCH_ARMS = ("prepacked", "int8-dynamic", "weight-only-int8")


class LlamaCpp:
    """A GGUF file in llama.cpp (llama-cpp-python's low-level API) with one sequence: forwards over a KV cache."""

    def __init__(self, gguf: Path, threads: int):
        import llama_cpp

        self.native = native = llama_cpp
        native.llama_backend_init()
        self._quiet = native.llama_log_callback(lambda level, text, data: None)
        native.llama_log_set(self._quiet, ctypes.c_void_p(0))
        self.model = native.llama_model_load_from_file(str(gguf).encode(), native.llama_model_default_params())
        params = native.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = 2048, 512, 512
        params.n_threads = params.n_threads_batch = threads
        self.context = native.llama_init_from_model(self.model, params)
        self.vocab = native.llama_vocab_n_tokens(native.llama_model_get_vocab(self.model))
        self.batch, self.length = native.llama_batch_init(512, 0, 1), 0

    def forward(self, ids: list[int], all_rows: bool = True) -> torch.Tensor:
        """Logits after each of `ids` [T, V] (or after the last [1, V]), read after the cached tokens."""
        batch = self.batch
        batch.n_tokens = len(ids)
        for i, token in enumerate(ids):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, self.length + i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, all_rows or i == len(ids) - 1
        assert self.native.llama_decode(self.context, batch) == 0
        self.length += len(ids)
        rows = len(ids) if all_rows else 1
        logits = np.ctypeslib.as_array(self.native.llama_get_logits(self.context), (rows, self.vocab))
        return torch.from_numpy(logits.copy())  # [rows, V]: the context reuses its buffer

    def crop(self, length: int) -> None:
        self.native.llama_memory_seq_rm(self.native.llama_get_memory(self.context), 0, length, -1)
        self.length = length


def llama_cpp_figures(lm: LlamaCpp, ids: torch.Tensor, counts: list[int], references: dict) -> dict:
    """The same figures for llama.cpp: ms a forward of N new tokens, prefill ms a token, agreement."""
    prompt = ids[0].tolist()
    times = {}
    for n in counts:
        lm.crop(0)
        lm.forward(prompt[:PROMPT_TOKENS], all_rows=False)
        runs = []
        for _ in range(5):
            began = time.perf_counter()
            lm.forward([7] * n)
            runs.append(1000 * (time.perf_counter() - began))
            lm.crop(PROMPT_TOKENS)
        times[n] = statistics.median(runs)
    lm.crop(0)
    whole = lm.forward(prompt).argmax(-1)  # [T]
    lm.crop(0)
    lm.forward(prompt[:STEPWISE_FROM], all_rows=False)
    stepwise = torch.stack([lm.forward([token])[0].argmax() for token in prompt[STEPWISE_FROM:STEPWISE_END]])
    agree = (
        float((whole == references["whole"]).float().mean()),
        float((stepwise == references["stepwise"]).float().mean()),
    )
    return {
        "times": times,
        "prefill": prefill_ms(lambda chunk: (lm.crop(0), lm.forward(chunk, False)), prompt),
        "agree": agree,
    }


def prefill_ms(read: Callable[[list[int]], object], prompt: list[int]) -> dict[int, float]:
    """ms a token to read the first N tokens of `prompt` in one forward, for N in PREFILL_TOKENS (repeated to N)."""
    timed = {}
    for n in PREFILL_TOKENS:
        chunk = (prompt * (n // len(prompt) + 1))[:n]
        began = time.perf_counter()
        read(chunk)
        timed[n] = 1000 * (time.perf_counter() - began) / n
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", default="1,5,9")
    parser.add_argument("--gguf", type=Path, help="also llama.cpp on this GGUF file (needs llama-cpp-python)")
    parser.add_argument("--requantize", default="", help="and on it requantized by llama.cpp: q8_0, q4_0")
    parser.add_argument("--arms", default=",".join(TORCH_ARMS), help=f"torch arms beside fp32: {', '.join(TORCH_ARMS)}")
    args = parser.parse_args()
    chosen = set(args.arms.split(","))
    if chosen - set(TORCH_ARMS):
        parser.error(f"unknown arms {', '.join(sorted(chosen - set(TORCH_ARMS)))}")
    torch.set_num_threads(args.threads)
    counts = [int(n) for n in args.tokens.split(",")]
    loaded = load_model(args.model, "cpu")
    lm = loaded.model
    text = (Path(__file__).resolve().parents[1] / "engine" / "infill.py").read_text()
    ids = torch.tensor([encode_text(loaded.tokenizer, text)[:400]])
    references = {"whole": greedy_tokens(lm, ids), "stepwise": greedy_tokens(lm, ids[:, :STEPWISE_END], STEPWISE_FROM)}
    arms = {"fp32": {n: median_ms(lm, n) for n in counts}}
    with torch.inference_mode():
        prefills = {
            "fp32": prefill_ms(lambda chunk: lm(input_ids=torch.tensor([chunk]), logits_to_keep=1), ids[0].tolist())
        }
    agreements = {}
    if "prepacked" in chosen:
        prepacked = copy.deepcopy(lm)
        prepack_linears(prepacked)
        arms["fp32 prepacked (the engine's)"] = {n: median_ms(prepacked, n) for n in counts}
        with torch.inference_mode():
            prefills["fp32 prepacked (the engine's)"] = prefill_ms(
                lambda chunk: prepacked(input_ids=torch.tensor([chunk]), logits_to_keep=1), ids[0].tolist()
            )
        agreements["fp32 prepacked (the engine's)"] = agreement(prepacked, ids, references)
        del prepacked
    if args.gguf:
        with tempfile.TemporaryDirectory() as scratch:
            for name, gguf in gguf_arms(args.gguf, args.requantize, Path(scratch)):
                figures = llama_cpp_figures(LlamaCpp(gguf, args.threads), ids, counts, references)
                arms[name], prefills[name], agreements[name] = figures["times"], figures["prefill"], figures["agree"]
    int8_arms = (("dynamic int8, every Linear", ()), ("int8-dynamic (opt-in)", CAUSAL_KEEP_FP32))
    for name, keep in int8_arms if "int8-dynamic" in chosen else ():
        quantized = quantize_causal(copy.deepcopy(lm), keep)
        arms[name] = {n: median_ms(quantized, n) for n in counts}
        agreements[name] = agreement(quantized, ids, references)
        del quantized
    if "weight-only-int8" in chosen:
        for module in list(lm.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(module, name, WeightOnlyInt8(child))
        arms["weight-only int8"] = {n: median_ms(lm, n) for n in counts}
        agreements["weight-only int8"] = agreement(lm, ids, references)
    fp32 = arms["fp32"]
    print(f"{args.model}, {args.threads} thread(s), a forward of N new tokens over a {PROMPT_TOKENS}-token cache:")
    for name, times in arms.items():
        cells = ", ".join(f"{n} new {times[n]:.0f} ms ({fp32[n] / times[n]:.2f}x fp32's speed)" for n in counts)
        print(f"  {name}: {cells}")
    for name, per_token in prefills.items():
        cells = ", ".join(f"{n} tokens {ms:.1f} ms a token" for n, ms in per_token.items())
        print(f"  {name}: reading a prompt in one forward, {cells}")
    for name, (whole, stepwise) in agreements.items():
        print(
            f"  {name}: greedy next token equal to fp32's {100 * whole:.1f} % in one forward of {ids.shape[1]} "
            f"tokens, {100 * stepwise:.1f} % token by token over {STEPWISE_END - STEPWISE_FROM}"
        )


def gguf_arms(gguf: Path, requantize: str, scratch: Path) -> list[tuple[str, Path]]:
    """(arm name, file): `gguf` itself, and each type in `requantize` written by llama.cpp into `scratch`."""
    import llama_cpp

    arms = [(f"llama.cpp, {gguf.name}", gguf)]
    for kind in filter(None, requantize.split(",")):
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
        params.allow_requantize = True
        out = scratch / f"{kind}.gguf"
        assert llama_cpp.llama_model_quantize(str(gguf).encode(), str(out).encode(), ctypes.byref(params)) == 0
        arms.append((f"llama.cpp, {gguf.name} requantized to {kind}", out))
    return arms


if __name__ == "__main__":
    main()
