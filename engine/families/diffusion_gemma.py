"""DiffusionGemma: the prompt is encoded once into the encoder's KV cache; the decoder reads the canvas
bidirectionally against it, conditioned on the previous step's logits (self-conditioning)."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaForBlockDiffusion
from transformers.cache_utils import DynamicCache

from engine.errors import stop_if_asked
from engine.prompt import PREFILL_CHUNK, PromptBatch


def encoder_cache(model: DiffusionGemmaForBlockDiffusion) -> DynamicCache:
    """An empty KV cache for the encoder, whose layers are those of the text config."""
    return DynamicCache(config=model.config.text_config)


@torch.inference_mode()
def encode_prompts(
    model: DiffusionGemmaForBlockDiffusion,
    batch: PromptBatch,
    cache: DynamicCache | None = None,
    cached_tokens: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> DynamicCache:
    """Prefill: the encoder's KV cache of the prompt rows, in `cache` (a new one where None; returned).

    With `cache` holding an earlier prompt whose first `cached_tokens` tokens (ids and positions) equal this
    one's, only the rest is encoded: typing at the cursor extends the prefix, so most of the prompt is reused.
    The cache is cropped in place. `PREFILL_CHUNK` tokens a forward, `should_stop()` asked between them (raising
    Cancelled): a long prompt is seconds of reading, and a keystroke that supersedes it should not wait for all
    of it. Cancelled, `cache` keeps the chunks already read (exact: the encoder is causal).
    """
    if cache is None:
        cache, cached_tokens = encoder_cache(model), 0
    elif cached_tokens < cache.get_seq_length():
        cache.crop(cached_tokens - cache.get_seq_length())  # 5.23's crop takes minus the tokens to drop
    length = batch.input_ids.shape[1]
    for start in range(cached_tokens, length, PREFILL_CHUNK):
        if start > cached_tokens:
            stop_if_asked(should_stop, "prefill")
        end = min(start + PREFILL_CHUNK, length)
        model.model.encoder(
            input_ids=batch.input_ids[:, start:end],
            attention_mask=batch.attention_mask[:, :end],
            position_ids=batch.position_ids[:, start:end],
            past_key_values=cache,
        )
    return cache


@dataclass
class GemmaState:
    cache: DynamicCache  # the encoder's KV cache of the prompt rows
    decoder_mask: torch.Tensor  # [b, L + C] bool: prompt padding is False, the canvas all True


class DiffusionGemma:
    """DiffusionGemmaForBlockDiffusion as a canvas model: uniform renoising, the whole canvas in one segment."""

    mask_token_id = None
    one_row_at_a_time = False
    edits = None

    def __init__(self, model: DiffusionGemmaForBlockDiffusion):
        self.model = model
        self.vocab_size = model.config.text_config.vocab_size

    def prefill(self, batch: PromptBatch, cache: DynamicCache | None = None) -> GemmaState:
        cache = cache if cache is not None else encode_prompts(self.model, batch)
        canvas_length = batch.canvas_position_ids.shape[1]
        return GemmaState(cache, F.pad(batch.attention_mask, (0, canvas_length), value=True))

    def segments(self, batch: PromptBatch) -> list[int]:
        return [batch.canvas_position_ids.shape[1]]

    def canvas_logits(self, state: GemmaState, canvas, positions, previous) -> torch.Tensor:
        return self.model(
            past_key_values=state.cache,
            decoder_input_ids=canvas,
            decoder_position_ids=positions,
            decoder_attention_mask=state.decoder_mask,
            self_conditioning_logits=previous,
        ).logits  # [b, C, V] float32

    def select(self, state: GemmaState, keep: torch.Tensor) -> GemmaState:
        state.cache.batch_select_indices(keep)
        return GemmaState(state.cache, state.decoder_mask[keep])

    def commit(self, state: GemmaState, tokens: torch.Tensor, positions: torch.Tensor) -> None:
        """One segment: nothing follows it."""
