"""Block drafting on a causal code LM: blockfill-coder's decoding, and the base's own left-to-right decoding.

The FIM prompt runs through the model once into a KV cache. Then each step is one forward over the tokens
settled since the last step (read causally, exactly as the base reads them, adapter off) followed by a block of
`block_size` masked positions (read with the drafting adapter on, bidirectionally among themselves, attending to
everything before them):

    cache | pending p_0 .. p_n-1 (causal, base view) | masks m_0 .. m_B-1 (adapter, bidirectional)

With the logit shift of a causal LM, p_n-1's logits are the base's own prediction of the next token, and m_j's
logits draft the token after it. A step keeps the base's next token always (the leftmost open position, under the
base's view) and the drafts after it while each is at least `draft_threshold` likely. With `verify`, the next
step checks every draft against the base's prediction at its position (the pending tokens are read by the base
anyway) and discards it and what follows at the first mismatch: the middle is then token for token the base's
greedy middle, whatever the adapter does, and a trained adapter buys only speed (tokens per step). With
`block_size=0` this is plain greedy decoding with a KV cache: the causal family runs the same loop.

A step can also settle several tokens without the adapter: `lookup_tokens` drafts copied from a reference (the
prompt, or a middle decoded before) after the place where the middle's last `LOOKUP_NGRAM` tokens occur in it
(prompt-lookup decoding), verified the same way, so the middle stays the base's greedy one. With both, a step
takes the lookup drafts where the reference has some (they run longer, and code repeats itself) and the masks'
drafts where it has none. The prompt's last forward carries the masks too, so the first step verifies drafts, and
a step that verifies drafts also runs a fallback block of masks behind its first token alone (`fallback_masks`):
where the first draft fails, the step's own masks read a refused token, but the fallback block's did not.

One row at a time: the forwards of a 0.5B model on a CPU are bound by reading its weights, so a block of masked
positions costs little more than one token, while rows that accept different numbers of tokens would need
ragged caches.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from engine.errors import stop_if_asked
from engine.healing import Vocabulary, still_to_write
from engine.models.gated_lora import DraftingAdapter
from engine.postprocess.base import first_code_line, indent_width, scope_floor
from engine.prompt import PREFILL_CHUNK


@dataclass(frozen=True)
class DraftSettings:
    block_size: int = 8  # masked positions drafted per step; 0: one token a step (the base, left to right)
    draft_threshold: float = 0.6  # a draft is kept while its probability is at least this
    verify: bool = True  # keep a draft only once the base predicts the same token at its position
    lookup_tokens: int = 0  # tokens copied a step from the reference after the middle's last n-gram (before masks)
    fallback_masks: int = 0  # masks drafted behind each of a step's first pending tokens, for when later ones fail
    fallback_blocks: int = 0  # behind how many of them


@dataclass(frozen=True)
class DraftResult:
    tokens: list[int]  # the middle, up to and including its end token when it wrote one
    steps: int  # forwards after the prefill
    confidence: float  # mean base probability of the kept tokens
    written: int  # tokens decoded up to the middle's end and one more (its end token or the token that ended it)


class Drafter:
    """A causal LM and, for blockfill-coder, its drafting adapter: the two forwards the loop needs.

    `threads_for(tokens)`: the CPU threads a forward over that many tokens runs on (engine.threads), as a context;
    none: torch's current count."""

    def __init__(
        self,
        lm: nn.Module,
        adapter: DraftingAdapter | None,
        threads_for: Callable[[int], AbstractContextManager[None]] | None = None,
    ):
        self.lm, self.adapter = lm, adapter
        self.threads_for = threads_for or (lambda tokens: nullcontext())

    @torch.inference_mode()
    def prefill(
        self,
        input_ids: list[int],
        cache: DynamicCache,
        cached_tokens: int = 0,
        should_stop: Callable[[], bool] | None = None,
        block: int = 0,
    ) -> torch.Tensor:
        """Encode the prompt after its first `cached_tokens` (already in `cache`, cropped to them here); returns
        the logits after it [1 + block, V]: the base's prediction of the next token, then `block` masks' drafts of
        the tokens after that one. The masks ride on the last forward, so a middle's first step already verifies
        drafts instead of only drafting them (where the first drafts hold, a middle takes one step less).

        `PREFILL_CHUNK` tokens a forward, `should_stop()` asked between them: a file's first prompt is seconds of
        reading on a CPU, and a keystroke that supersedes it should not wait for all of it. Cancelled, `cache`
        keeps the chunks already read (exact: a causal model's keys do not depend on what follows)."""
        if cached_tokens < cache.get_seq_length():
            cache.crop(cached_tokens - cache.get_seq_length())
        for start in range(cached_tokens, len(input_ids), PREFILL_CHUNK):
            if start > cached_tokens:
                stop_if_asked(should_stop, "prefill")
            end = min(start + PREFILL_CHUNK, len(input_ids))
            last = end == len(input_ids)
            blocks = [MaskBlock(end - start, block)] if block and last else []
            logits = self._forward(cache, input_ids[start:end], blocks, rows=1)
        return logits

    @torch.inference_mode()
    def step(
        self, cache: DynamicCache, pending: list[int], block: int, fallback_masks: int = 0, fallback_blocks: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward over `pending` (appended to the cache) and `block` masks (not kept); returns the pending
        rows' logits [n, V] (row i: the base's prediction after pending[i]), the masks' drafts [block, V], and
        fallback blocks' drafts [F, fallback_masks, V]: block i's masks read pending[: i + 1] and nothing after
        them, as a block behind pending[i] alone would, so a step whose drafts fail after pending[i] still leaves
        drafts for the next (F = min(fallback_blocks, n - 1): none behind the last, the first block's place)."""
        n = len(pending)
        size = min(fallback_masks, block)
        fallbacks = min(fallback_blocks, n - 1) if size else 0
        first = [MaskBlock(n, block)] if block else []
        blocks = first + [MaskBlock(i + 1, size) for i in range(fallbacks)]
        logits = self._forward(cache, pending, blocks, rows=n)  # [n + B + F * S, V]
        return logits[:n], logits[n : n + block], logits[n + block :].reshape(fallbacks, size, logits.shape[-1])

    def _forward(self, cache: DynamicCache, tokens: list[int], blocks: list["MaskBlock"], rows: int) -> torch.Tensor:
        """`tokens` appended to the cache, read causally as the base reads them (adapter off), then each block of
        masks (adapter on, bidirectional among themselves, after the tokens it reads: draft_attention; not kept);
        the logits of the last `rows` tokens and of every mask [rows + masks, V] (only those rows go through the
        LM head: a prompt's chunk needs one)."""
        device, past = self.lm.device, cache.get_seq_length()
        n, masks = len(tokens), sum(b.size for b in blocks)
        embeds = self.lm.get_input_embeddings()(torch.tensor([tokens], device=device))  # [1, n, H]
        positions = [torch.arange(past, past + n)]
        if masks:
            assert self.adapter is not None, "drafting needs the adapter"
            mask_embeds = self.adapter.mask_embedding.to(embeds.dtype).expand(1, masks, -1)  # [1, M, H]
            embeds = torch.cat([embeds, mask_embeds], dim=1)  # [1, n + M, H]
            positions += [torch.arange(past + b.reads, past + b.reads + b.size) for b in blocks]
        # Without masks the tokens read causally, the model's own default (any causal architecture), and the
        # adapter stays off.
        attention, gate = None, None
        if masks:
            attention = {"full_attention": draft_attention(past, n, blocks, device)[None, None]}
            gate = torch.cat([torch.zeros(n, device=device), torch.ones(masks, device=device)])[None, :, None]
        gated = self.adapter.gate.open_on(gate) if self.adapter is not None else nullcontext()
        with gated, self.threads_for(n + masks):
            logits = self.lm(
                inputs_embeds=embeds,
                position_ids=torch.cat(positions).to(device)[None],  # [1, n + M]
                attention_mask=attention,
                past_key_values=cache,
                logits_to_keep=rows + masks,
            ).logits[0]  # [rows + M, V]
        if masks:
            cache.crop(-masks)
        return logits


@dataclass(frozen=True)
class MaskBlock:
    """`size` masks placed after the first `reads` pending tokens of a forward, which are all they read of them."""

    reads: int
    size: int


def draft_attention(past: int, pending: int, blocks: list[MaskBlock], device=None) -> torch.Tensor:
    """Which keys each query may read [pending + M, past + pending + M], M the blocks' masks: everything cached;
    pending tokens causally among themselves and never a mask (so they are read as the base reads them); each
    block's masks the pending tokens it reads and its own block (as masks after those tokens alone would)."""
    total = pending + sum(b.size for b in blocks)
    allowed = torch.zeros(total, past + total, dtype=torch.bool, device=device)
    allowed[:, :past] = True
    allowed[:pending, past : past + pending] = torch.ones(pending, pending, dtype=torch.bool, device=device).tril()
    start = pending
    for block in blocks:
        end = start + block.size
        allowed[start:end, past : past + block.reads] = True
        allowed[start:end, past + start : past + end] = True
        start = end
    return allowed


def draft_middle(
    drafter: Drafter,
    cache: DynamicCache,
    prediction: torch.Tensor,
    settings: DraftSettings,
    max_tokens: int,
    ends_at: Callable[[list[int]], int | None],
    should_stop: Callable[[], bool] | None = None,
    reference: Sequence[int] = (),
    lead: Sequence[int] = (),
    heal: str = "",
    vocabulary: Vocabulary | None = None,
) -> DraftResult:
    """Decode the middle after a prefilled prompt (`prediction` [1 + B, V], `Drafter.prefill`'s: the base's
    prediction after it, then the masks' drafts of the tokens after that one, if the prefill drafted any).

    `ends_at(tokens)` says where the middle is over (an end token, the end of the mode's line or block) as the
    number of tokens to keep, or None. Raises Cancelled when `should_stop()` turns true between two steps.
    `reference`: the tokens lookup drafts are copied from (`settings.lookup_tokens`); `lead`: the prompt's last
    tokens, matched in it before the middle's own (so a middle decoded before can be copied from its start).
    `heal`: the text of the prompt's last token, taken back (engine.healing): the middle writes it again first,
    each token the base's likeliest among those that agree with it, and nothing is drafted until it is written.
    """
    kept: list[int] = []
    probabilities: list[float] = []

    def open_heal(written: list[int]) -> tuple[int, ...] | None:  # the tokens allowed next while healing
        rest = still_to_write(heal, written, vocabulary) if heal and vocabulary else ""
        return (vocabulary.starts(rest) or None) if rest else None  # none agree (a rare character): free again

    def choose(probability: torch.Tensor, written: list[int]) -> int:  # the base's choice after `written`
        allowed = open_heal(written)
        if allowed is None:
            return int(probability.argmax())
        return allowed[int(probability[torch.tensor(allowed, device=probability.device)].argmax())]

    def copied(pending: list[int]) -> list[int]:  # lookup drafts after the base's next token
        if not settings.lookup_tokens or open_heal([*kept, *pending]) is not None:
            return []
        limit = min(settings.lookup_tokens, max_tokens - len(kept) - 1)
        return lookup_drafts(reference, [*lead[-LOOKUP_NGRAM:], *kept, *pending], limit)

    def add_masks_drafts(pending: list[int], pending_probability: list[float], draft_logits: torch.Tensor) -> None:
        # The masks drafted the tokens after the base's next one (pending[0]), read after everything before it:
        # usable where no lookup draft stands in their place and no healing text is still to write.
        if len(pending) > 1 or not len(draft_logits) or open_heal([*kept, *pending]) is not None:
            return
        drafts = draft_logits.float().softmax(-1).max(-1)  # [B]
        for probability, token in zip(drafts.values.tolist(), drafts.indices.tolist(), strict=True):
            if probability < settings.draft_threshold:
                break
            pending.append(token)
            pending_probability.append(probability)

    first = prediction[0].float().softmax(-1)
    pending = [choose(first, [])]  # pending[0] is always the base's own choice
    pending += copied(pending)
    pending_probability = [float(first[pending[0]])] + [1.0] * (len(pending) - 1)  # a draft's: replaced once verified
    add_masks_drafts(pending, pending_probability, prediction[1:])
    steps = 0
    while True:
        stop_if_asked(should_stop, "drafting")
        if (end := ends_at(kept + pending[:1])) is not None or len(kept) + 1 >= max_tokens:
            kept.append(pending[0])  # the base's own token needs no forward to be kept
            probabilities.append(pending_probability[0])
            return _result(kept, end, max_tokens, steps, probabilities)
        pending_logits, draft_logits, fallback_logits = drafter.step(
            cache, pending, settings.block_size, settings.fallback_masks, settings.fallback_blocks
        )
        steps += 1
        base = pending_logits.float().softmax(-1)  # [n, V]
        base_probability, base_choice = base.max(-1)  # [n]
        keep = len(pending)
        if settings.verify:
            mismatch = (base_choice[:-1] != torch.tensor(pending[1:], device=base_choice.device)).nonzero()
            keep = int(mismatch[0]) + 1 if mismatch.numel() else keep
        if keep < len(pending):
            cache.crop(keep - len(pending))
        kept += pending[:keep]
        probabilities += pending_probability[:1] + [float(p) for p in base_probability[: keep - 1]]
        if (end := ends_at(kept)) is not None or len(kept) >= max_tokens:
            return _result(kept, end, max_tokens, steps, probabilities)
        pending = [choose(base[keep - 1], kept)]
        pending += copied(pending)
        pending_probability = [float(base[keep - 1, pending[0]])] + [1.0] * (len(pending) - 1)
        if keep == len(pending_logits):  # the masks read after every pending token, and all of them were kept
            add_masks_drafts(pending, pending_probability, draft_logits)
        elif keep <= len(fallback_logits):  # a draft failed: a fallback block read up to the last token kept
            add_masks_drafts(pending, pending_probability, fallback_logits[keep - 1])


LOOKUP_NGRAM = 3  # tokens of the middle's end that must recur in the reference before a lookup draft is copied


def lookup_drafts(reference: Sequence[int], written: list[int], limit: int, ngram: int = LOOKUP_NGRAM) -> list[int]:
    """Up to `limit` tokens that follow the last occurrence in `reference` of `written`'s last `ngram` tokens (the
    middle so far, the base's next token included); none where they do not occur."""
    if limit <= 0 or len(written) < ngram:
        return []
    tail = written[-ngram:]
    for start in range(len(reference) - ngram - 1, -1, -1):
        if reference[start : start + ngram] == tail:
            return list(reference[start + ngram : start + ngram + limit])
    return []


def _result(kept: list[int], end: int | None, max_tokens: int, steps: int, probabilities: list[float]) -> DraftResult:
    tokens = kept[: end if end is not None else max_tokens]
    confidence = sum(probabilities[: len(tokens)]) / max(1, len(probabilities[: len(tokens)]))
    # Drafts verified past the end are not counted as written: tokens a step measures what the middle needed.
    return DraftResult(tokens=tokens, steps=steps, confidence=confidence, written=min(len(kept), len(tokens) + 1))


def end_rule(
    piece: Callable[[int], str],
    stop_ids: frozenset[int],
    mode: str,
    line_before: str,
    suffix: str,
    past_dedents: bool = False,
    healed: str = "",
) -> Callable[[list[int]], int | None]:
    """Where a middle is over, as `draft_middle` asks: at an end token (dropped), after its first line in line
    mode (the first it writes on: one that only ends the cursor's line, which was complete, goes on to the next
    line, as postprocess.limit_scope shows it), or in block mode once a complete line dedents below the block's
    first line or repeats the suffix's first line (a FIM model that runs on writes the code after the hole again;
    post-processing trims what it repeated). `piece(token)` is the token's text; `line_before` is the cursor's
    line up to the cursor.

    `past_dedents`: a block ends only below the suffix's first line's indentation too, where that is lower and
    indented (postprocess.base.scope_floor), so a hole that closes its own branch and goes on (`n //= i` /
    `else:` / `i += 1` before the suffix's `return`) is written whole; for callers that cut the middle at every
    line end and choose the cut (engine.rerank), as post-processing's limit_scope then allows.

    `healed`: the end of `line_before` that the prompt left out and the middle writes again first (engine.healing);
    it is the line's text, not the middle's."""
    suffix_line = first_code_line(suffix)

    def ends_at(tokens: list[int]) -> int | None:
        text, block_indent, line_start = line_before[: len(line_before) - len(healed)], None, 0
        for index, token in enumerate(tokens):
            if token in stop_ids:
                return index
            text += piece(token)
            while (newline := text.find("\n", line_start)) >= 0:
                written_from = len(line_before) if line_start == 0 and mode == "line" else line_start
                line, line_start = text[line_start:newline], newline + 1
                if not text[written_from:newline].strip():
                    continue
                if mode != "block" or line.rstrip() == suffix_line:
                    return index + 1
                indent = indent_width(line)
                if block_indent is None:
                    block_indent = scope_floor(indent, suffix_line, past_dedents)
                elif indent < block_indent:
                    return index + 1
        return None

    return ends_at
