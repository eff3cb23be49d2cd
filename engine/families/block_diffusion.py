"""Block diffusion on a Qwen2 / Qwen3 graph: SDAR (no logit shift) and Fast-dLLM v2 (logits shifted by one).

Blocks sit at absolute positions (multiples of the checkpoint's `block_size`), as in training: the prompt's whole
blocks are prefilled into the KV cache under a block-causal mask; its tail joins the first canvas block. A block is
refined under a mask that lets it read the cache and itself bidirectionally, then committed: one more forward of
its settled tokens writes their keys and values to the cache, and the next block starts. With the logit shift, a
block's first position is predicted by the previous forward's last position (`carry`).

One row at a time: rows end at different blocks, so their caches would be ragged (engine.coder argues the same).
"""

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache

from engine.families import attention_masks
from engine.prompt import PromptBatch


def block_causal(positions: torch.Tensor, block_size: int) -> torch.Tensor:
    """[b, L, L] True where a query reads a key: every key in its own block and in earlier blocks, blocks cut at
    absolute `positions` [b, L] (multiples of `block_size`): the prefill's mask, and the one these models train with."""
    block = positions // block_size  # [b, L]
    return block[:, :, None] >= block[:, None, :]


@dataclass
class BlockState:
    cache: DynamicCache  # committed blocks
    pending: torch.Tensor  # [1, n] settled ids of the current block not yet in the cache (the prompt's tail)
    pending_positions: torch.Tensor  # [1, n]
    carry: torch.Tensor  # [1, V] logits at the last cached position: the next token's (shifted families)


class BlockDiffusion:
    """A Qwen2 / Qwen3 causal-LM graph decoding block by block, re-masked with the checkpoint's mask token."""

    one_row_at_a_time = True
    edits = None

    def __init__(self, model: PreTrainedModel, mask_token_id: int, block_size: int, shift: bool):
        self.model, self.mask_token_id, self.block_size, self.shift = model, mask_token_id, block_size, shift
        self.vocab_size = model.config.vocab_size

    def _forward(self, state: BlockState, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits [1, Q, V] of `ids` [1, Q] reading the whole cache and each other (one block)."""
        past = state.cache.get_seq_length()
        allowed = torch.ones(1, ids.shape[1], past + ids.shape[1], dtype=torch.bool, device=ids.device)
        return self.model(
            input_ids=ids, position_ids=positions, attention_mask=attention_masks(allowed), past_key_values=state.cache
        ).logits

    def prefill(self, batch: PromptBatch, cache: None = None) -> BlockState:
        ids, positions = batch.input_ids, batch.position_ids  # [1, L] (one row, no padding)
        whole = ids.shape[1] - ids.shape[1] % self.block_size
        state = BlockState(DynamicCache(config=self.model.config), ids[:, whole:], positions[:, whole:], None)
        if whole:
            allowed = block_causal(positions[:, :whole], self.block_size)  # [1, L, L]
            state.carry = self.model(
                input_ids=ids[:, :whole],
                position_ids=positions[:, :whole],
                attention_mask=attention_masks(allowed),
                past_key_values=state.cache,
                logits_to_keep=1,
            ).logits[:, -1]
        return state

    def segments(self, batch: PromptBatch) -> list[int]:
        """The rest of the prompt's last block, then whole blocks, cut at the canvas's end."""
        canvas = batch.canvas_position_ids.shape[1]
        first = self.block_size - batch.input_ids.shape[1] % self.block_size
        sizes = [min(first, canvas)]
        while sum(sizes) < canvas:
            sizes.append(min(self.block_size, canvas - sum(sizes)))
        return sizes

    def canvas_logits(self, state: BlockState, canvas, positions, previous) -> torch.Tensor:
        n = state.pending.shape[1]
        ids = torch.cat([state.pending, canvas], dim=1)  # [1, n + S]
        logits = self._forward(state, ids, torch.cat([state.pending_positions, positions], dim=1))
        state.cache.crop(-ids.shape[1])  # a refinement step writes nothing to the cache
        if not self.shift:
            return logits[:, n:]  # [1, S, V]
        before = state.carry[:, None] if n == 0 else logits[:, n - 1 : n]  # [1, 1, V] predicts canvas[0]
        return torch.cat([before, logits[:, n:-1]], dim=1)  # [1, S, V]

    def select(self, state: BlockState, keep: torch.Tensor) -> BlockState:
        return state  # one row: it only ever leaves when it is done

    def commit(self, state: BlockState, tokens: torch.Tensor, positions: torch.Tensor) -> None:
        ids = torch.cat([state.pending, tokens], dim=1)  # [1, n + S]
        logits = self._forward(state, ids, torch.cat([state.pending_positions, positions], dim=1))
        state.carry = logits[:, -1]
        state.pending, state.pending_positions = ids[:, :0], positions[:, :0]
