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

One row of the batch: the forwards of a 0.5B model on a CPU are bound by reading its weights, so a block of masked
positions costs little more than one token, while rows that accept different numbers of tokens would need ragged
caches. Several middles share that row instead (`decode_middles`): engine.infill decodes the FIM middle and the
plain continuation of the file side by side in one KV cache whose first keys (the file's head) both prompts
begin with, each step one forward over both middles' tokens and masks, each reading only its own keys after the
shared ones (`SharedCache`), so the weights are read once a step for both.
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
    """A causal LM and, for blockfill-coder, its drafting adapter: the forwards the loop needs.

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

    @property
    def can_share_a_cache(self) -> bool:
        """Whether middles can decode side by side in one cache (SharedCache): it hides keys with an attention mask
        written for full-attention layers, and a sliding-window layer's would need the keys' positions too."""
        return set(getattr(self.lm.config, "layer_types", None) or ["full_attention"]) == {"full_attention"}

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
            blocks = (MaskBlock(end - start, block),) if block and end == len(input_ids) else ()
            (logits,) = self.forward(SharedCache(cache), [Span(0, input_ids[start:end], 1, blocks)])
        return logits

    def forward(self, shared: "SharedCache", spans: list["Span"]) -> list[torch.Tensor]:
        """One forward over several middles' spans: each span's tokens appended to the cache after the spans
        before it, read causally as the base reads them (adapter off), then every span's blocks of masks (adapter
        on, bidirectional within a block, after the span's tokens it reads: draft_attention; not kept). Returns
        each span's logits [rows + masks, V]: its last `rows` tokens', then its masks' (only those rows go
        through the LM head). What stays of the tokens is the caller's to settle (`SharedCache.settle`)."""
        device, past = self.lm.device, shared.cache.get_seq_length()
        tokens = [token for span in spans for token in span.tokens]
        n, masks = len(tokens), sum(span.masks for span in spans)
        embeds = self.lm.get_input_embeddings()(torch.tensor([tokens], device=device))  # [1, n, H]
        positions, rows, offset = [], [], 0
        for span in spans:
            start = shared.lengths[span.middle]
            positions.append(torch.arange(start, start + len(span.tokens)))
            offset += len(span.tokens)
            rows.append(torch.arange(offset - span.rows, offset))
        rows.append(torch.arange(n, n + masks))
        if masks:
            assert self.adapter is not None, "drafting needs the adapter"
            mask_embeds = self.adapter.mask_embedding.to(embeds.dtype).expand(1, masks, -1)  # [1, M, H]
            embeds = torch.cat([embeds, mask_embeds], dim=1)  # [1, n + M, H]
            for span in spans:
                start = shared.lengths[span.middle]
                positions += [torch.arange(start + b.reads, start + b.reads + b.size) for b in span.blocks]
        reads = [shared.reads(span.middle, device) for span in spans]
        # One middle that reads the whole cache, without masks: the model's own causal default (any causal
        # architecture), and the adapter stays off.
        attention, gate = None, None
        if masks or len(spans) > 1 or reads[0] is not None:
            attention = {"full_attention": draft_attention(past, spans, reads, device)[None, None]}
        if masks:
            gate = torch.cat([torch.zeros(n, device=device), torch.ones(masks, device=device)])[None, :, None]
        gated = self.adapter.gate.open_on(gate) if self.adapter is not None else nullcontext()
        with gated, self.threads_for(n + masks):
            logits = self.lm(
                inputs_embeds=embeds,
                position_ids=torch.cat(positions).to(device)[None],  # [1, n + M]
                attention_mask=attention,
                past_key_values=shared.cache,
                logits_to_keep=torch.cat(rows).to(device),
            ).logits[0]  # [sum(rows) + M, V]
        if masks:
            shared.cache.crop(-masks)
        row_logits = logits[: len(logits) - masks].split([span.rows for span in spans])
        mask_logits = logits[len(logits) - masks :].split([span.masks for span in spans])
        return [torch.cat(pair) for pair in zip(row_logits, mask_logits, strict=True)]


@dataclass(frozen=True)
class MaskBlock:
    """`size` masks placed after the first `reads` tokens of their span, which are all they read of them."""

    reads: int
    size: int


@dataclass(frozen=True)
class Span:
    """One middle's part of a forward: `tokens` to append to the cache (its pending tokens, or a prompt's tail),
    the logits of its last `rows` of them wanted, and `blocks` of masks drafting after them."""

    middle: int  # which middle's keys it reads (SharedCache)
    tokens: list[int]
    rows: int
    blocks: tuple[MaskBlock, ...] = ()

    @property
    def masks(self) -> int:
        return sum(block.size for block in self.blocks)


HIDDEN = -1  # the owner of a refused key that other middles' keys follow: no middle reads it


class SharedCache:
    """A KV cache that middles decode in side by side, one forward a step for all of them: engine.infill's FIM
    middle and plain continuation, whose prompts begin with the same file head. Middle i reads the cache's first
    `shared[i]` keys and then only its own; a middle's refused drafts are cut off the cache where they are its
    end, and hidden where another middle's keys follow them. One middle over a whole cache: a plain KV cache."""

    def __init__(self, cache: DynamicCache, shared: Sequence[int] = ()):
        self.cache = cache
        self.start = cache.get_seq_length()
        self.shared = list(shared) or [self.start]
        self.owners: list[int] = []  # per key after `start`: the middle it belongs to, or HIDDEN
        self.lengths = list(self.shared)  # per middle: the tokens it has read, so its next token's position

    def reads(self, middle: int, device=None) -> torch.Tensor | None:
        """Which cached keys `middle` reads [keys]; None: every one."""
        if self.shared[middle] == self.start and all(owner == middle for owner in self.owners):
            return None
        reads = torch.zeros(self.start + len(self.owners), dtype=torch.bool, device=device)
        reads[: self.shared[middle]] = True
        if self.owners:
            reads[self.start :] = torch.tensor(self.owners, device=device) == middle
        return reads

    def settle(self, spans: list[Span], kept: list[int]) -> None:
        """After a forward over `spans`: span i's first `kept[i]` tokens stay its middle's, the rest are dropped."""
        for span in spans:
            self.owners += [span.middle] * len(span.tokens)
        end = len(self.owners)
        for span, keep in reversed(list(zip(spans, kept, strict=True))):
            first, refused = end - len(span.tokens), len(span.tokens) - keep
            if refused and end == len(self.owners):
                self.cache.crop(-refused)
                del self.owners[first + keep :]
            elif refused:
                self.owners[first + keep : end] = [HIDDEN] * refused
            self.lengths[span.middle] += keep
            end = first


def draft_attention(past: int, spans: list[Span], reads: Sequence[torch.Tensor | None], device=None) -> torch.Tensor:
    """Which keys each query may read [n + M, past + n + M] (n the spans' tokens, M their masks): of the cache,
    what each span's middle reads (`reads[i]` [past], None: all of it); a span's tokens causally among themselves
    and nothing of another span or of any mask (so they are read as the base reads them); each block's masks the
    tokens of its span it reads and its own block (as masks after those tokens alone would)."""
    n, masks = sum(len(span.tokens) for span in spans), sum(span.masks for span in spans)
    allowed = torch.zeros(n + masks, past + n + masks, dtype=torch.bool, device=device)
    token_start, mask_start = 0, n
    for span, cached in zip(spans, reads, strict=True):
        length, first = len(span.tokens), past + token_start
        rows = slice(token_start, token_start + length)
        allowed[rows, :past] = True if cached is None else cached
        allowed[rows, first : first + length] = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        for block in span.blocks:
            rows = slice(mask_start, mask_start + block.size)
            allowed[rows, :past] = True if cached is None else cached
            allowed[rows, first : first + block.reads] = True
            allowed[rows, past + mask_start : past + mask_start + block.size] = True
            mask_start += block.size
        token_start += length
    return allowed


class Middle:
    """One middle decoded step by step, as `decode_middles` drives it: what its part of the next forward reads
    (`span`), and what it keeps of the logits that forward gives it (`advance`).

    `ends_at(tokens)` says where the middle is over (an end token, the end of the mode's line or block) as the
    number of tokens to keep, or None. `reference()`: the tokens lookup drafts are copied from
    (`settings.lookup_tokens`), asked each step (a middle decoded beside this one grows); `lead`: the prompt's
    last tokens, matched in it before the middle's own (so a middle decoded before can be copied from its start).
    `heal`: the text of the prompt's last token, taken back (engine.healing): the middle writes it again first,
    each token the base's likeliest among those that agree with it, and nothing is drafted until it is written.
    """

    def __init__(
        self,
        settings: DraftSettings,
        max_tokens: int,
        ends_at: Callable[[list[int]], int | None],
        reference: Callable[[], Sequence[int]] = tuple,
        lead: Sequence[int] = (),
        heal: str = "",
        vocabulary: Vocabulary | None = None,
    ):
        self.settings, self.max_tokens, self.ends_at = settings, max_tokens, ends_at
        self.reference, self.lead, self.heal, self.vocabulary = reference, lead, heal, vocabulary
        self.kept: list[int] = []
        self.probabilities: list[float] = []  # the base's probability of each kept token
        self.pending: list[int] = []  # pending[0] is always the base's own choice; drafts after it
        self.pending_probability: list[float] = []  # a draft's is 1.0 until it is verified
        self.prompt_tail: list[int] = []  # read before the middle's first prediction (`read_first`)
        self.steps = 0
        self.result: DraftResult | None = None

    def so_far(self) -> list[int]:
        """The tokens kept, then those the next forward verifies (none once the middle is over): what another
        middle decoded beside this one may copy as lookup drafts."""
        return self.kept if self.result is not None else [*self.kept, *self.pending]

    def begin(self, prediction: torch.Tensor) -> None:
        """Start after a prefilled prompt: `prediction` [1 + B, V], the base's prediction after it, then the
        masks' drafts of the tokens after that one, if the prefill drafted any."""
        first = prediction[0].float().softmax(-1)
        self._next(first, prediction[1:])

    def read_first(self, tokens: list[int]) -> None:
        """Start after the prompt's last `tokens`, not yet in the cache: the first forward reads them (and masks
        after them), beside the other middles' steps."""
        self.prompt_tail = tokens

    def span(self, middle: int) -> Span | None:
        """This middle's part of the next forward, as middle number `middle` of the shared cache; None once it
        is over (`result` is set: the base's own next token needs no forward to be kept)."""
        block = self.settings.block_size
        if self.prompt_tail:
            return Span(middle, self.prompt_tail, 1, (MaskBlock(len(self.prompt_tail), block),) if block else ())
        if self.result is not None:
            return None
        if (end := self.ends_at(self.kept + self.pending[:1])) is not None or len(self.kept) + 1 >= self.max_tokens:
            self.kept.append(self.pending[0])
            self.probabilities.append(self.pending_probability[0])
            self.result = _result(self.kept, end, self.max_tokens, self.steps, self.probabilities)
            return None
        # A fallback block behind each of the first pending tokens (none behind the last: the first block's place)
        n, size = len(self.pending), min(self.settings.fallback_masks, block)
        fallbacks = min(self.settings.fallback_blocks, n - 1) if size else 0
        first = (MaskBlock(n, block),) if block else ()
        return Span(middle, self.pending, n, first + tuple(MaskBlock(i + 1, size) for i in range(fallbacks)))

    def advance(self, span: Span, logits: torch.Tensor) -> int:
        """Take the forward's logits for `span` [rows + masks, V] (row i: the base's prediction after pending[i];
        then the first block's drafts [B] and each fallback block's [S]: block i's masks read pending[: i + 1],
        as a block behind pending[i] alone would); returns how many of the span's tokens stay in the cache."""
        if self.prompt_tail:
            self.prompt_tail = []
            self.begin(logits)
            return len(span.tokens)
        self.steps += 1
        n = len(self.pending)
        block = self.settings.block_size  # the first block's masks (span), then the fallback blocks'
        base = logits[:n].float().softmax(-1)  # [n, V]
        draft_logits = logits[n : n + block]  # [B, V]
        fallback_logits = logits[n + block :].split([b.size for b in span.blocks[1 if block else 0 :]])
        base_probability, base_choice = base.max(-1)  # [n]
        keep = n
        if self.settings.verify:
            mismatch = (base_choice[:-1] != torch.tensor(self.pending[1:], device=base_choice.device)).nonzero()
            keep = int(mismatch[0]) + 1 if mismatch.numel() else keep
        self.kept += self.pending[:keep]
        self.probabilities += self.pending_probability[:1] + [float(p) for p in base_probability[: keep - 1]]
        if (end := self.ends_at(self.kept)) is not None or len(self.kept) >= self.max_tokens:
            self.result = _result(self.kept, end, self.max_tokens, self.steps, self.probabilities)
        elif keep == n:  # the masks read after every pending token, and all of them were kept
            self._next(base[keep - 1], draft_logits)
        elif keep <= len(fallback_logits):  # a draft failed: a fallback block read up to the last token kept
            self._next(base[keep - 1], fallback_logits[keep - 1])
        else:  # a draft failed behind every fallback block: nothing read up to the last token kept
            self._next(base[keep - 1])
        return keep

    def _next(self, probability: torch.Tensor, draft_logits: torch.Tensor | None = None) -> None:
        """The pending tokens of the next step: the base's choice from `probability` [V], then lookup drafts, or
        else the masks' drafts [B, V] of the tokens after it (read after everything before it) while likely."""
        self.pending = [self._choose(probability)]
        self.pending += self._copied()
        self.pending_probability = [float(probability[self.pending[0]])] + [1.0] * (len(self.pending) - 1)
        if draft_logits is None or len(self.pending) > 1 or self._open_heal(self.pending) is not None:
            return
        drafts = draft_logits.float().softmax(-1).max(-1)  # [B]
        for draft_probability, token in zip(drafts.values.tolist(), drafts.indices.tolist(), strict=True):
            if draft_probability < self.settings.draft_threshold:
                break
            self.pending.append(token)
            self.pending_probability.append(draft_probability)

    def _open_heal(self, pending: list[int]) -> tuple[int, ...] | None:
        """The tokens allowed next while healing, after the kept tokens and `pending`; None: any."""
        written = [*self.kept, *pending]
        rest = still_to_write(self.heal, written, self.vocabulary) if self.heal and self.vocabulary else ""
        return (self.vocabulary.starts(rest) or None) if rest else None  # none agree (a rare character): free again

    def _choose(self, probability: torch.Tensor) -> int:
        """The base's choice after the kept tokens: its likeliest, or while healing its likeliest that agrees."""
        allowed = self._open_heal([])
        if allowed is None:
            return int(probability.argmax())
        return allowed[int(probability[torch.tensor(allowed, device=probability.device)].argmax())]

    def _copied(self) -> list[int]:
        """Lookup drafts after the base's next token (pending[0])."""
        if not self.settings.lookup_tokens or self._open_heal(self.pending) is not None:
            return []
        limit = min(self.settings.lookup_tokens, self.max_tokens - len(self.kept) - 1)
        written = [*self.lead[-LOOKUP_NGRAM:], *self.kept, *self.pending]
        return lookup_drafts(self.reference(), written, limit)


@torch.inference_mode()
def decode_middles(
    drafter: Drafter,
    shared: SharedCache,
    middles: list[Middle],
    should_stop: Callable[[], bool] | None = None,
    patience: int | None = None,
) -> list[DraftResult | None]:
    """Decode the middles side by side in `shared` (middle i as its middle i), one forward a step for all of them
    until each is over: a forward reads the weights once for every middle's tokens and masks, which on a CPU
    costs little more than for one middle's. Raises Cancelled when `should_stop()` turns true between steps.

    `patience`: once the first middle is over, the others get at most this many more forwards; one still
    unfinished then is given up (None in its place)."""
    left = None  # forwards the others still get, once the first middle is over
    while True:
        stop_if_asked(should_stop, "drafting")
        spans = [span for index, middle in enumerate(middles) if (span := middle.span(index)) is not None]
        if patience is not None and left is None and middles[0].result is not None:
            left = patience
        if not spans or left == 0:
            return [middle.result for middle in middles]
        left = None if left is None else left - 1
        logits = drafter.forward(shared, spans)
        kept = [middles[span.middle].advance(span, rows) for span, rows in zip(spans, logits, strict=True)]
        shared.settle(spans, kept)


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
    """Where a middle is over, as a `Middle` asks: at an end token (dropped), after its first line in line
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
