"""Masked diffusion on a Qwen2 graph: Dream, Dream-Coder, DiffuCoder, Open-dCoder.

Prefix, a canvas of mask tokens and suffix form one sequence, read with full bidirectional attention; as in these
models' training, the logits are shifted by one (position i's token is predicted at position i - 1), so the
canvas is read together with the token before it (the prompt's last id, see engine.prompt's `canvas_between`).

With `approximate_cache` (Fast-dLLM's dual cache) the context's keys and values are computed once, from the
sequence with the canvas all masks, and every step reads only the canvas against them: a step costs a canvas
instead of the whole sequence, at the price of context keys that never see the canvas settle. Without it every
step recomputes everything, exactly as the models were trained; benchmarks/masked_cache.py measures both.

DreamOn (`edits`): the loop grows and shrinks one row's canvas; the suffix's positions follow its end, and the
approximate cache, whose keys hold the old positions, is dropped for that row once its length changes.
"""

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache

from engine.families import CanvasEdits, attention_masks
from engine.prompt import PromptBatch


@dataclass
class MaskedState:
    context_ids: torch.Tensor  # [b, L - 1] the prompt less its last token (prefix and suffix, left-padded)
    context_positions: torch.Tensor  # [b, L - 1]
    context_valid: torch.Tensor  # [b, L - 1] bool, False on padding
    anchor: torch.Tensor  # [b, 1] the token before the canvas, whose logits predict the canvas's first position
    suffix: torch.Tensor  # [b, L - 1] bool, True on the suffix (the context after the canvas)
    cache: DynamicCache | None  # the context's keys and values (approximate caching), or None: recompute


class MaskedDiffusion:
    """A Qwen2 causal-LM graph read bidirectionally, re-masked with the checkpoint's mask token."""

    def __init__(
        self,
        model: PreTrainedModel,
        mask_token_id: int,
        approximate_cache: bool = True,
        edits: CanvasEdits | None = None,
    ):
        self.model, self.mask_token_id, self.approximate_cache = model, mask_token_id, approximate_cache
        self.vocab_size = model.config.vocab_size
        self.edits = edits
        self.one_row_at_a_time = edits is not None  # canvases of different lengths are never batched

    def _forward(self, ids, positions, keys_valid, cache=None) -> torch.Tensor:
        """Logits [b, Q, V] of `ids` [b, Q] reading every valid key [b, K] (cached ones first)."""
        allowed = keys_valid[:, None, :].expand(-1, ids.shape[1], -1)  # [b, Q, K]
        return self.model(
            input_ids=ids, position_ids=positions, attention_mask=attention_masks(allowed), past_key_values=cache
        ).logits

    def prefill(self, batch: PromptBatch, cache: None = None) -> MaskedState:
        canvas = batch.canvas_position_ids  # [b, C]
        ids, positions, valid = batch.input_ids, batch.position_ids, batch.attention_mask
        suffix = (positions[:, :-1] > positions[:, -1:]) & valid[:, :-1]  # [b, L - 1] after the anchor
        state = MaskedState(ids[:, :-1], positions[:, :-1], valid[:, :-1], ids[:, -1:], suffix, None)
        if self.approximate_cache:
            # The context's keys as they are with the canvas all masks; the anchor and canvas are cropped off.
            masks = torch.full_like(canvas, self.mask_token_id)
            state.cache = DynamicCache(config=self.model.config)
            self._window(state, masks, canvas)
        return state

    def _window(self, state: MaskedState, canvas, positions) -> torch.Tensor:
        """Logits [b, 1 + C, V] of the anchor and the canvas, after the context (from the cache, or recomputed)."""
        ids = torch.cat([state.anchor, canvas], dim=1)  # [b, 1 + C]
        window_positions = torch.cat([positions[:, :1] - 1, positions], dim=1)  # [b, 1 + C]
        valid = torch.cat([state.context_valid, torch.ones_like(ids, dtype=torch.bool)], dim=1)  # [b, L + C]
        if state.cache is None:
            ids = torch.cat([state.context_ids, ids], dim=1)  # [b, L + C]
            window_positions = torch.cat([state.context_positions, window_positions], dim=1)
            return self._forward(ids, window_positions, valid)[:, -canvas.shape[1] - 1 :]
        if state.cache.get_seq_length() == 0:  # prefill: the context and the window in one forward
            ids = torch.cat([state.context_ids, ids], dim=1)
            window_positions = torch.cat([state.context_positions, window_positions], dim=1)
        logits = self._forward(ids, window_positions, valid, state.cache)
        state.cache.crop(-canvas.shape[1] - 1)  # the window's keys change every step: never kept
        return logits[:, -canvas.shape[1] - 1 :]

    def segments(self, batch: PromptBatch) -> list[int]:
        return [batch.canvas_position_ids.shape[1]]

    def canvas_logits(self, state: MaskedState, canvas, positions, previous) -> torch.Tensor:
        return self._window(state, canvas, positions)[:, :-1]  # [b, C, V]: shifted, the anchor predicts canvas[0]

    def select(self, state: MaskedState, keep: torch.Tensor) -> MaskedState:
        if state.cache is not None:
            state.cache.batch_select_indices(keep)
        ids, positions, valid = state.context_ids[keep], state.context_positions[keep], state.context_valid[keep]
        return MaskedState(ids, positions, valid, state.anchor[keep], state.suffix[keep], state.cache)

    def resize(self, state: MaskedState, end: torch.Tensor) -> None:
        first = state.context_positions.masked_fill(~state.suffix, torch.iinfo(torch.long).max).amin(-1, True)
        moved = state.context_positions - first + end  # [b, L - 1]
        state.context_positions = torch.where(state.suffix, moved, state.context_positions)
        state.cache = None  # its keys were computed at the old positions

    def commit(self, state: MaskedState, tokens: torch.Tensor, positions: torch.Tensor) -> None:
        """One segment: nothing follows it."""
