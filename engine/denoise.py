"""Block diffusion on the model's forward: encoder prefill once, then a few parallel denoising steps.

Written on `DiffusionGemmaForBlockDiffusion.forward` rather than its `generate()` so that each request gets its
own canvas size and positions, finished rows leave the batch, a caller can cancel between steps, and the
per-step sampler stays lean (the stock one costs as much as a small model's step on CPU). transformers'
`generate()` remains the reference the benchmarks compare against.

Per step: decode the canvas -> temperature-scaled logits -> a sample and the argmax per position -> accept the
lowest-entropy positions whose summed entropy (less the largest) stays under the bound, and at least a linear
share of the canvas (`accept_floor`: a weak model accepts about one position a step, and would otherwise finish
reading a canvas that is mostly noise) -> renoise the rest with uniform random tokens. A row stops when its
argmax canvas is stable and its mean entropy is below a threshold.

Refinement starts from a given canvas (the previous keystroke's suggestion) instead of noise and runs a step or
two at the schedule's final temperature: the model is trained to repair a partly corrupted canvas, which is what
a suggestion made stale by one typed character is.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaForBlockDiffusion
from transformers.cache_utils import DynamicCache

from engine.errors import Cancelled
from engine.prompt import PromptBatch


@dataclass(frozen=True)
class DenoiseSettings:
    max_steps: int = 16  # denoising steps at most; adaptive stopping usually ends sooner
    entropy_bound: float = 0.1  # summed entropy (nats) of the positions accepted in one step, less the largest
    t_max: float = 0.8  # temperature at the first step, falling linearly...
    t_min: float = 0.4  # ...to this at the last
    stability_steps: int = 1  # the argmax canvas must be unchanged this many steps to stop
    confidence_threshold: float = 0.005  # and its mean per-position entropy below this
    sample: bool = False  # False: accept argmax tokens (deterministic); True: sample (alternatives for cycling)
    no_copy_noise: bool = False  # never propose the random token a renoised position holds
    floor_from_left: bool = False  # the floor's positions: leftmost first (a semi-autoregressive order)
    accept_floor: bool = True  # accept at least C * (step + 1) / max_steps positions, so no noise outlives the run


@dataclass(frozen=True)
class DenoiseResult:
    tokens: torch.Tensor  # [B, C] final argmax canvas
    steps: list[int]  # denoising steps each row took
    confidence: list[float]  # mean max-probability over each row's canvas at its last step


def _temperature(settings: DenoiseSettings, step: int) -> float:
    remaining = settings.max_steps - step  # counts down to 1, as in the reference schedule
    return settings.t_min + (settings.t_max - settings.t_min) * remaining / settings.max_steps


def _uniform_canvas(generators: list[torch.Generator], length: int, vocab: int, device) -> torch.Tensor:
    # One generator per row: a request's tokens do not depend on what else shares its batch.
    return torch.stack([torch.randint(0, vocab, (length,), generator=g, device=device) for g in generators])


def _sample_rows(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """Inverse-CDF sampling, one uniform draw per position: cheaper than multinomial over [B*C, V]."""
    bsz, length, _ = probs.shape
    draws = torch.stack([torch.rand(length, 1, generator=g, device=probs.device) for g in generators])  # [B, C, 1]
    cdf = probs.cumsum(-1)  # [B, C, V]
    return torch.searchsorted(cdf, draws * cdf[..., -1:]).squeeze(-1).clamp_(max=probs.shape[-1] - 1)  # [B, C]


def _distribution(
    logits: torch.Tensor, temperature: float, noise_tokens: torch.Tensor | None, is_noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Temperature-scaled logits (in place of `logits`), their softmax and its entropy per position.

    A [b, C, V] tensor is 256 MB a row at Gemma's 262,144 tokens and a 256 canvas, so the softmax is the only one
    made beside the logits: entropy = logsumexp(s) - sum(p * s), with logsumexp(s) = max(s) - log(max(p)) and the
    sum a batched dot product. `noise_tokens` [b, C]: bar the random token a renoised position (`is_noise`) holds.
    """
    scaled = logits.div_(temperature)  # [b, C, V]
    if noise_tokens is not None:
        # A renoised position's token is known to be random: predicting it is copying noise. The lowest finite
        # logit, not -inf, so that p * s stays 0 there.
        index = noise_tokens.unsqueeze(-1)  # [b, C, 1]
        barred = scaled.gather(-1, index).masked_fill_(is_noise.unsqueeze(-1), torch.finfo(scaled.dtype).min)
        scaled.scatter_(-1, index, barred)
    probs = scaled.softmax(-1)  # [b, C, V]
    expected = (probs.unsqueeze(-2) @ scaled.unsqueeze(-1)).flatten(-3)  # [b, C]: sum(p * s)
    log_normalizer = scaled.max(-1).values - probs.max(-1).values.log()  # [b, C]
    return scaled, probs, log_normalizer - expected


def _accept_mask(entropy: torch.Tensor, bound: float, at_least: int = 1, from_left: bool = False) -> torch.Tensor:
    """Entropy-bound acceptance: the k lowest-entropy positions with sum(entropy) - max(entropy) <= bound, and
    never fewer than `at_least`: the next lowest-entropy positions, or with `from_left` the leftmost ones."""
    sorted_entropy, order = entropy.sort(dim=-1)  # [B, C]
    keep_sorted = sorted_entropy.cumsum(-1) - sorted_entropy <= bound  # always keeps at least one position
    first = torch.arange(entropy.shape[-1], device=entropy.device) < at_least  # [C]
    if not from_left:
        keep_sorted |= first
    accepted = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # [B, C]
    return accepted | first if from_left else accepted


@torch.inference_mode()
def encode_prompts(
    model: DiffusionGemmaForBlockDiffusion,
    batch: PromptBatch,
    cache: DynamicCache | None = None,
    cached_tokens: int = 0,
) -> DynamicCache:
    """Prefill: the encoder's KV cache of the prompt rows.

    With `cache` holding an earlier prompt whose first `cached_tokens` tokens (ids and positions) equal this
    one's, only the rest is encoded: typing at the cursor extends the prefix, so most of the prompt is reused.
    The cache is cropped in place.
    """
    if cache is None:
        cache, cached_tokens = DynamicCache(config=model.config.text_config), 0
    else:
        cache.crop(cached_tokens - cache.get_seq_length())  # 5.23's crop takes minus the tokens to drop
    model.model.encoder(
        input_ids=batch.input_ids[:, cached_tokens:],
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids[:, cached_tokens:],
        past_key_values=cache,
    )
    return cache


@torch.inference_mode()
def denoise(
    model: DiffusionGemmaForBlockDiffusion,
    batch: PromptBatch,
    settings: DenoiseSettings,
    seeds: list[int],
    should_stop: Callable[[], bool] | None = None,
    cache: DynamicCache | None = None,
    initial_canvas: torch.Tensor | None = None,
) -> DenoiseResult:
    """Fill one canvas per prompt row. Raises Cancelled if `should_stop()` turns true between two steps.

    `cache`: the prompt's encoder cache from `encode_prompts` (computed here when None). A single-row cache is
    left as it was, so it can be reused for the next keystroke. `initial_canvas` [B, C]: start from these tokens
    instead of uniform noise (refinement; pair it with few steps and a constant low temperature).
    """
    device = batch.input_ids.device
    bsz, canvas_length = batch.canvas_position_ids.shape
    vocab = model.config.text_config.vocab_size
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    cache = cache if cache is not None else encode_prompts(model, batch)
    decoder_mask = F.pad(batch.attention_mask, (0, canvas_length), value=True)  # [B, L + C]

    active = list(range(bsz))  # rows still denoising, in batch order
    # Drawn even when refining, so each row's random stream is the same either way.
    canvas = _uniform_canvas(generators, canvas_length, vocab, device)  # [b, C] for the active rows
    is_noise = torch.ones_like(canvas, dtype=torch.bool)  # [b, C] positions holding random tokens
    if initial_canvas is not None:
        canvas = initial_canvas.to(device)
        is_noise = torch.zeros_like(is_noise)
    positions = batch.canvas_position_ids  # [b, C]
    previous_logits: torch.Tensor | None = None  # [b, C, V] self-conditioning input
    previous_argmax = torch.full_like(canvas, -1)
    stable_for = torch.zeros(bsz, dtype=torch.long, device=device)
    final_tokens = torch.empty(bsz, canvas_length, dtype=torch.long, device=device)
    steps, confidence = [settings.max_steps] * bsz, [0.0] * bsz

    for step in range(settings.max_steps):
        if should_stop is not None and should_stop():
            raise Cancelled("denoising cancelled")
        logits = model(
            past_key_values=cache,
            decoder_input_ids=canvas,
            decoder_position_ids=positions,
            decoder_attention_mask=decoder_mask,
            self_conditioning_logits=previous_logits,
        ).logits  # [b, C, V] float32
        noise_tokens = canvas if settings.no_copy_noise else None
        scaled, probs, entropy = _distribution(logits, _temperature(settings, step), noise_tokens, is_noise)
        argmax = scaled.argmax(-1)  # [b, C]
        proposal = _sample_rows(probs, [generators[i] for i in active]) if settings.sample else argmax
        at_least = -(-canvas_length * (step + 1) // settings.max_steps) if settings.accept_floor else 1
        accepted = _accept_mask(entropy, settings.entropy_bound, at_least, settings.floor_from_left)
        noise = _uniform_canvas([generators[i] for i in active], canvas_length, vocab, device)
        canvas = torch.where(accepted, proposal, noise)  # [b, C]
        is_noise = ~accepted
        previous_logits = scaled

        same = (argmax == previous_argmax).all(-1)  # [b]
        stable_for = torch.where(same, stable_for + 1, torch.zeros_like(stable_for))
        done = (stable_for >= settings.stability_steps) & (entropy.mean(-1) < settings.confidence_threshold)
        if step == settings.max_steps - 1:
            done[:] = True
        previous_argmax = argmax
        finished = done.nonzero().flatten().tolist()  # host sync: decides the next step's batch
        if not finished:
            continue
        top_prob = probs.max(-1).values.mean(-1)  # [b]
        for row in finished:
            index = active[row]
            final_tokens[index] = argmax[row]
            steps[index] = step + 1
            confidence[index] = float(top_prob[row])
        keep = (~done).nonzero().flatten()
        if keep.numel() == 0:
            break
        active = [active[i] for i in keep.tolist()]
        cache.batch_select_indices(keep)
        canvas, positions, previous_logits, is_noise = (
            canvas[keep],
            positions[keep],
            previous_logits[keep],
            is_noise[keep],
        )
        previous_argmax, stable_for, decoder_mask = previous_argmax[keep], stable_for[keep], decoder_mask[keep]
    return DenoiseResult(tokens=final_tokens, steps=steps, confidence=confidence)
