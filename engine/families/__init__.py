"""Model families as the one canvas loop (engine.denoise) sees them: each supplies its prefill and its canvas logits.

A family is one module: `diffusion_gemma` (encoder prefill, decoder over the canvas, uniform renoising),
`masked_diffusion` (Dream, Dream-Coder, DiffuCoder, Open-dCoder: the canvas inline between prefix and suffix under
full attention, re-masked with the mask token) and `block_diffusion` (SDAR, Fast-dLLM v2: the canvas in blocks,
each refined under a bidirectional mask and then committed to the KV cache). The loop owns sampling, acceptance
and stopping; a family owns only how a model reads a canvas.
"""

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.prompt import PromptBatch


@dataclass(frozen=True)
class CanvasEdits:
    """DreamOn's variable-length canvas: a masked position settled as `expand` becomes two masks, one settled as
    `delete` is removed, so the middle's length need not be guessed; the loop applies them, the family moves the
    suffix."""

    expand: int  # the checkpoint's `<|expand|>` id
    delete: int  # its `<|delete|>` id
    max_growth: int  # masks that expansions may add to a row in all: the canvas never outgrows its start plus this
    end: int  # pads a finished row to the widest canvas (the tokenizer's EOS, where the middle ends)


class CanvasModel(Protocol):
    """The forwards the canvas loop needs."""

    vocab_size: int
    # None: a rejected position is renoised with uniform random tokens and every position is re-predicted each
    # step (DiffusionGemma). A token id: a rejected position holds this mask token, and a settled one is kept.
    mask_token_id: int | None
    # True: rows are decoded one at a time (block commits end rows at different blocks; their caches would be ragged)
    one_row_at_a_time: bool
    # None: the canvas keeps its length. Edits: it grows and shrinks (one row at a time, so rows never ragged).
    edits: CanvasEdits | None

    def prefill(self, batch: PromptBatch, cache: Any = None) -> Any:
        """The state the canvas is read against (KV caches, context ids); `cache`: a reusable prefill, if any."""

    def segments(self, batch: PromptBatch) -> list[int]:
        """Canvas lengths decoded in turn, summing to the canvas: one for the whole canvas, or its blocks."""

    def canvas_logits(
        self, state: Any, canvas: torch.Tensor, positions: torch.Tensor, previous: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits [b, S, V] for `canvas` [b, S] at RoPE `positions` [b, S]; `previous`: the last step's scaled
        logits (self-conditioning), None at a segment's first step."""

    def select(self, state: Any, keep: torch.Tensor) -> Any:
        """The state of the rows `keep` [b'] (finished rows leave the batch)."""

    def resize(self, state: Any, end: torch.Tensor) -> None:
        """The canvas (of a family with edits) now ends before position `end` [b, 1]: move the suffix there."""

    def commit(self, state: Any, tokens: torch.Tensor, positions: torch.Tensor) -> None:
        """A segment is settled: make `tokens` [b, S] context for the next segment (no-op with one segment)."""


def attention_masks(allowed: torch.Tensor) -> dict[str, torch.Tensor]:
    """transformers' Qwen2 / Qwen3 take a prebuilt mask per layer type: `allowed` [b, Q, K] (True: the query
    reads the key) as the 4-D mask of every layer, which replaces the causal mask they would build."""
    mask = allowed[:, None]  # [b, 1, Q, K]
    return {"full_attention": mask, "sliding_attention": mask}
