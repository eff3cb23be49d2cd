"""The one canvas loop: a few parallel refinement steps over a canvas, for every diffusion family.

Written on the models' forwards rather than their own `generate()` loops so that each request gets its own
canvas size and positions, finished rows leave the batch, a caller can cancel between steps, and the per-step
sampler stays lean (DiffusionGemma's stock one costs as much as a small model's step on CPU). A family
(engine.families) supplies its prefill and its canvas logits; transformers' `generate()` remains the reference the
benchmarks compare against.

Per step: the family's canvas logits -> temperature-scaled logits -> a sample and the argmax per position ->
accept positions by the sampler and at least a linear share of the canvas (`accept_floor`: a weak model accepts
about one position a step, and would otherwise finish reading a canvas that is mostly noise) -> the rest is
renoised: uniform random tokens for DiffusionGemma, which re-predicts every position each step, or the mask token
for masked and block diffusion, where a settled position is kept. Samplers: `entropy` accepts the lowest-entropy
positions whose summed entropy (less the largest) stays under a bound (DiffusionGemma's); `confidence` and
`margin` accept every position whose top probability (or top-two gap) reaches `unmask_threshold` (Dream's
papers, Fast-dLLM's parallel decoding). A DiffusionGemma row stops when its argmax canvas is stable and its mean
entropy is below a threshold; a masked row when nothing is masked. Block families decode their canvas in blocks,
each committed to the KV cache before the next starts, and stop after a block that holds an end token.

Variable length (DreamOn, a family with `edits`, one row at a time): after acceptance a settled `<|expand|>`
becomes two masks and a settled `<|delete|>` is removed, the family moves the suffix after the new canvas, and
expansion is barred once the row has grown by `max_growth` or at the last step; rows are padded with the end token
to the widest canvas they could reach.

Refinement starts from a given canvas (the previous keystroke's suggestion) instead of noise and runs a step or
two at the schedule's final temperature: DiffusionGemma is trained to repair a partly corrupted canvas, which is
what a suggestion made stale by one typed character is.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from engine.errors import stop_if_asked
from engine.families import CanvasEdits, CanvasModel
from engine.families.diffusion_gemma import DiffusionGemma
from engine.prompt import PromptBatch

SAMPLERS = ("entropy", "confidence", "margin")


@dataclass(frozen=True)
class DenoiseSettings:
    max_steps: int = 16  # denoising steps at most (per block for block families); adaptive stopping ends sooner
    entropy_bound: float = 0.1  # summed entropy (nats) of the positions accepted in one step, less the largest
    t_max: float = 0.8  # temperature at the first step, falling linearly...
    t_min: float = 0.4  # ...to this at the last
    stability_steps: int = 1  # the argmax canvas must be unchanged this many steps to stop
    confidence_threshold: float = 0.005  # and its mean per-position entropy below this
    sample: bool = False  # False: accept argmax tokens (deterministic); True: sample (alternatives for cycling)
    no_copy_noise: bool = False  # never propose the random token a renoised position holds
    floor_from_left: bool = False  # the floor's positions: leftmost first (a semi-autoregressive order)
    accept_floor: bool = True  # accept at least C * (step + 1) / max_steps positions, so no noise outlives the run
    sampler: str = "entropy"  # "entropy" (bound), "confidence" or "margin" (threshold)
    unmask_threshold: float = 0.9  # confidence / margin: accept every position at least this sure


@dataclass(frozen=True)
class DenoiseResult:
    tokens: torch.Tensor  # [B, C] final canvas
    steps: list[int]  # denoising steps each row took
    confidence: list[float]  # mean max-probability over each row's canvas at its last step


def _temperature(settings: DenoiseSettings, step: int) -> float:
    remaining = settings.max_steps - step  # counts down to 1, as in the reference schedule
    return settings.t_min + (settings.t_max - settings.t_min) * remaining / settings.max_steps


def _uniform_canvas(generators: list[torch.Generator], length: int, vocab: int, device) -> torch.Tensor:
    # One generator per row: a request's tokens do not depend on what else shares its batch.
    return torch.stack([torch.randint(0, vocab, (length,), generator=g, device=device) for g in generators])


def _noise(family: CanvasModel, generators: list[torch.Generator], length: int, device) -> torch.Tensor:
    """What a rejected position holds [b, S]: uniform random tokens, or the family's mask token."""
    if family.mask_token_id is None:
        return _uniform_canvas(generators, length, family.vocab_size, device)
    return torch.full((len(generators), length), family.mask_token_id, dtype=torch.long, device=device)


def _sample_rows(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """Inverse-CDF sampling, one uniform draw per position: cheaper than multinomial over [B*C, V]."""
    bsz, length, _ = probs.shape
    draws = torch.stack([torch.rand(length, 1, generator=g, device=probs.device) for g in generators])  # [B, C, 1]
    cdf = probs.cumsum(-1)  # [B, C, V]
    return torch.searchsorted(cdf, draws * cdf[..., -1:]).squeeze(-1).clamp_(max=probs.shape[-1] - 1)  # [B, C]


def _distribution(
    logits: torch.Tensor,
    temperature: float,
    noise_tokens: torch.Tensor | None,
    is_noise: torch.Tensor,
    barred_tokens: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Temperature-scaled logits (in place of `logits`), their softmax and its entropy per position.

    A [b, C, V] tensor is 256 MB a row at Gemma's 262,144 tokens and a 256 canvas, so the softmax is the only one
    made beside the logits: entropy = logsumexp(s) - sum(p * s), with logsumexp(s) = max(s) - log(max(p)) and the
    sum a batched dot product. `noise_tokens` [b, C]: bar the random token a renoised position (`is_noise`) holds;
    `barred_tokens`: tokens no position may take (a masked family's mask token, an expansion past the budget).
    """
    scaled = logits.div_(temperature)  # [b, C, V]
    if barred_tokens:
        scaled[..., list(barred_tokens)] = torch.finfo(scaled.dtype).min
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


def _threshold_mask(score: torch.Tensor, threshold: float, at_least: int = 1) -> torch.Tensor:
    """Threshold acceptance: every position scoring at least `threshold`, and never fewer than `at_least` (the
    highest-scoring ones): Fast-dLLM's parallel decoding, and Dream's top-k schedule with threshold above 1."""
    rank = score.argsort(-1, descending=True).argsort(-1)  # [B, C] 0 for the best position
    return (score >= threshold) | (rank < at_least)


def _acceptance(
    settings: DenoiseSettings, probs: torch.Tensor, entropy: torch.Tensor, settled: torch.Tensor, at_least: int
) -> torch.Tensor:
    """Which positions [b, S] to accept this step; `settled` positions (masked families) are always kept."""
    if settings.sampler == "entropy":
        entropy = entropy.masked_fill(settled, 0.0)  # settled positions count first and add nothing to the bound
        return _accept_mask(entropy, settings.entropy_bound, at_least, settings.floor_from_left)
    top = probs.topk(2, dim=-1).values  # [b, S, 2]
    score = top[..., 0] if settings.sampler == "confidence" else top[..., 0] - top[..., 1]
    return _threshold_mask(score.masked_fill(settled, float("inf")), settings.unmask_threshold, at_least)


def edit_canvas(
    canvas: torch.Tensor, is_noise: torch.Tensor, edits: CanvasEdits, mask: int, room: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One row's canvas [1, S] after DreamOn's edits: a settled expand becomes two masks (the first `room` of
    them; a later one is only re-masked), a settled delete is removed. Returns the canvas and its noise [1, S'] and
    how many masks were added."""
    tokens, noise = canvas[0], is_noise[0]  # [S]
    expand = (tokens == edits.expand) & ~noise
    grows = expand & (expand.cumsum(0) <= room)
    copies = (tokens != edits.delete).long() + grows.long()  # [S] 0: deleted, 2: expanded (noise holds a mask)
    tokens, noise = tokens.masked_fill(expand, mask), noise | expand
    return tokens.repeat_interleave(copies)[None], noise.repeat_interleave(copies)[None], int(grows.sum())


def _refine(
    family: CanvasModel,
    state: Any,
    positions: torch.Tensor,
    settings: DenoiseSettings,
    generators: list[torch.Generator],
    should_stop: Callable[[], bool] | None,
    initial_canvas: torch.Tensor | None,
) -> DenoiseResult:
    """Refine one segment of the canvas (all of it, or one block) for every row; rows leave when done."""
    device = positions.device
    bsz, length = positions.shape
    masked = family.mask_token_id is not None
    edits = family.edits
    start = positions[:, :1]  # [b, 1] the canvas's first position, kept as its length changes
    grown = 0  # masks added by expansions (edits are one row at a time)
    active = list(range(bsz))  # rows still denoising, in batch order
    # Drawn even when refining, so each row's random stream is the same either way.
    canvas = _noise(family, generators, length, device)  # [b, S] for the active rows
    is_noise = torch.ones_like(canvas, dtype=torch.bool)  # [b, S] positions holding noise or a mask
    if initial_canvas is not None:
        canvas = initial_canvas.to(device)
        is_noise = torch.zeros_like(is_noise)
    previous_logits: torch.Tensor | None = None  # [b, S, V] self-conditioning input
    previous_argmax = torch.full_like(canvas, -1)
    stable_for = torch.zeros(bsz, dtype=torch.long, device=device)
    width, end = (length + edits.max_growth, edits.end) if edits is not None else (length, 0)
    final_tokens = torch.full((bsz, width), end, dtype=torch.long, device=device)
    steps, confidence = [settings.max_steps] * bsz, [0.0] * bsz

    for step in range(settings.max_steps):
        stop_if_asked(should_stop, "denoising")
        logits = family.canvas_logits(state, canvas, positions, previous_logits)  # [b, S, V]
        noise_tokens = canvas if settings.no_copy_noise and not masked else None
        last = step == settings.max_steps - 1
        # Proposing the mask token settles nothing; nor expanding without room or time left to fill the masks.
        barred = [family.mask_token_id] if masked else []
        if edits is not None and (last or grown >= edits.max_growth):
            barred.append(edits.expand)
        scaled, probs, entropy = _distribution(logits, _temperature(settings, step), noise_tokens, is_noise, barred)
        argmax = scaled.argmax(-1)  # [b, S]
        proposal = _sample_rows(probs, [generators[i] for i in active]) if settings.sample else argmax
        settled = ~is_noise if masked else torch.zeros_like(is_noise)  # [b, S] kept from earlier steps
        proposal = torch.where(settled, canvas, proposal)
        size = canvas.shape[1]
        at_least = -(-size * (step + 1) // settings.max_steps) if settings.accept_floor else 1
        accepted = _acceptance(settings, probs, entropy, settled, size if last and edits else at_least)
        noise = _noise(family, [generators[i] for i in active], size, device)
        canvas = torch.where(accepted, proposal, noise)  # [b, S]
        is_noise = ~accepted
        previous_logits = scaled

        if edits is not None:
            canvas, is_noise, added = edit_canvas(
                canvas, is_noise, edits, family.mask_token_id, edits.max_growth - grown
            )
            grown += added
            if canvas.shape[1] != size:
                positions = start + torch.arange(canvas.shape[1], device=device)  # [1, S']
                family.resize(state, start + canvas.shape[1])
                previous_logits = None
            result, done = canvas, ~is_noise.any(-1)  # [1, S'], [1]
        elif masked:
            result = torch.where(accepted, proposal, argmax)  # [b, S] what stands if the row stops here
            done = accepted.all(-1)  # [b]
        else:
            result = argmax
            same = (argmax == previous_argmax).all(-1)  # [b]
            stable_for = torch.where(same, stable_for + 1, torch.zeros_like(stable_for))
            done = (stable_for >= settings.stability_steps) & (entropy.mean(-1) < settings.confidence_threshold)
        if last:
            done[:] = True
        previous_argmax = argmax
        finished = done.nonzero().flatten().tolist()  # host sync: decides the next step's batch
        if not finished:
            continue
        top_prob = probs.max(-1).values.mean(-1)  # [b]
        for row in finished:
            index = active[row]
            final_tokens[index, : result.shape[1]] = result[row]
            steps[index] = step + 1
            confidence[index] = float(top_prob[row])
        keep = (~done).nonzero().flatten()
        if keep.numel() == 0:
            break
        active = [active[i] for i in keep.tolist()]
        state = family.select(state, keep)
        canvas, positions, previous_logits, is_noise = (
            canvas[keep],
            positions[keep],
            previous_logits[keep],
            is_noise[keep],
        )
        previous_argmax, stable_for = previous_argmax[keep], stable_for[keep]
    return DenoiseResult(tokens=final_tokens, steps=steps, confidence=confidence)


@torch.inference_mode()
def denoise(
    model: PreTrainedModel | CanvasModel,
    batch: PromptBatch,
    settings: DenoiseSettings,
    seeds: list[int],
    should_stop: Callable[[], bool] | None = None,
    cache: Any = None,
    initial_canvas: torch.Tensor | None = None,
    stop_ids: frozenset[int] = frozenset(),
) -> DenoiseResult:
    """Fill one canvas per prompt row. Raises Cancelled if `should_stop()` turns true between two steps.

    `model`: a canvas model (engine.families), or a DiffusionGemma model, which is its own family. `cache`: the
    family's reusable prefill (DiffusionGemma's encoder cache from `encode_prompts`); a single-row cache is left as
    it was, so it can be reused for the next keystroke. `initial_canvas` [B, C]: start from these tokens instead of
    noise (refinement; pair it with few steps and a constant low temperature). `stop_ids`: a block family stops
    after the block where one of these settles, and pads the rest of the canvas with it.
    """
    family = model if hasattr(model, "canvas_logits") else DiffusionGemma(model)
    bsz = batch.input_ids.shape[0]
    if family.one_row_at_a_time and bsz > 1:
        rows = [
            denoise(family, batch.row(i), settings, seeds[i : i + 1], should_stop, stop_ids=stop_ids)
            for i in range(bsz)
        ]
        return DenoiseResult(
            torch.cat([r.tokens for r in rows]), [r.steps[0] for r in rows], [r.confidence[0] for r in rows]
        )
    generators = [torch.Generator(device=batch.input_ids.device).manual_seed(seed) for seed in seeds]
    state = family.prefill(batch, cache)
    pieces: list[DenoiseResult] = []
    offset = 0
    for length in family.segments(batch):
        positions = batch.canvas_position_ids[:, offset : offset + length]  # [b, S]
        piece = _refine(family, state, positions, settings, generators, should_stop, initial_canvas)
        pieces.append(piece)
        offset += length
        if offset == batch.canvas_position_ids.shape[1]:
            break
        family.commit(state, piece.tokens, positions)
        ends = [t for t in piece.tokens[0].tolist() if t in stop_ids]  # one row: a block family
        if ends:
            rest = batch.canvas_position_ids.shape[1] - offset
            pieces.append(DenoiseResult(torch.full((1, rest), ends[0]), [0], [piece.confidence[0]]))
            break
    return DenoiseResult(
        tokens=torch.cat([p.tokens for p in pieces], dim=1),
        steps=[sum(p.steps[row] for p in pieces) for row in range(bsz)],
        confidence=[sum(p.confidence[row] for p in pieces) / len(pieces) for row in range(bsz)],
    )
