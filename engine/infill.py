"""The engine's public entry point: requests in, completions out, for the CLI, the server and the benchmarks.

A request is the text before and after the hole. The engine decides the context and canvas (engine.context),
lays out the prompt (engine.prompt), denoises requests that share a canvas size together (engine.denoise),
and cleans and ranks what the model wrote (engine.postprocess).
"""

import copy
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers.cache_utils import DynamicCache
from tree_sitter import Tree

from engine.coder import (
    LOOKUP_NGRAM,
    Drafter,
    DraftResult,
    DraftSettings,
    Middle,
    SharedCache,
    decode_middles,
    end_rule,
)
from engine.config import EngineConfig
from engine.context import ContextBudget, InfillContext, build_context
from engine.denoise import SAMPLERS, DenoiseSettings, denoise
from engine.errors import Cancelled, ConfigError, InputError
from engine.families import CanvasEdits, CanvasModel
from engine.families.block_diffusion import BlockDiffusion
from engine.families.diffusion_gemma import DiffusionGemma, encode_prompts, encoder_cache
from engine.families.masked_diffusion import MaskedDiffusion
from engine.healing import Vocabulary, take_back, vocabulary_of
from engine.models.loading import LoadedModel, load_model
from engine.models.prepack import prepack_linears
from engine.postprocess import Candidate, PostprocessOptions, postprocess, standing_in
from engine.postprocess.base import last_line
from engine.prompt import Prompt, build_prompt, canvas_target, collate_prompts, encode_text, plain_file_head
from engine.rerank import file_log_likelihoods, line_prefixes
from engine.threads import ThreadPolicy


@dataclass(frozen=True)
class InfillRequest:
    prefix: str  # text before the hole
    suffix: str  # text after it
    language: str | None = None  # LSP language id or file extension; None: plain text
    canvas_tokens: int | None = None  # force the canvas size (oracle-length evaluation); None: the engine decides
    force: bool = False  # complete even where an editor would stay quiet (batch infilling names its holes)
    tree: Tree | None = None  # a parse of exactly prefix + suffix (an editor's live tree): saves a full parse


@dataclass(frozen=True)
class Completion:
    text: str  # what to insert at the hole, after post-processing ("" when nothing is worth showing)
    raw_text: str  # what the model wrote, cut at its end-of-sequence
    steps: int  # denoising steps taken (a causal model: forwards that wrote a token, the prompt's included)
    seconds: float  # this request's share of its denoising batch's wall time (all its drafts)
    confidence: float  # mean max-probability over the canvas, 0..1
    context: InfillContext
    warnings: list[str] = field(default_factory=list)
    reused_prompt_tokens: int = 0  # prompt tokens whose encoder cache came from the previous request
    refined: bool = False  # from the previous keystroke's suggestion (refined, or typed through: `typeahead`)
    tokens: int = 0  # tokens the model wrote (its end token included): tokens / steps is its parallelism


@dataclass(frozen=True)
class _Draft:
    """One denoised canvas for a hole, before post-processing."""

    raw: str  # the middle up to its end-of-sequence
    steps: int
    seconds: float  # its share of the batch's wall time
    confidence: float
    reused_prompt_tokens: int
    refined: bool
    tokens: int  # tokens written, end token included
    score: float  # what post-processing ranks drafts by after syntax: confidence, or engine.rerank's likelihood


# Drafts of one hole use seeds this far apart, so they never meet the seeds of an editor's alternatives (seed + i).
CANDIDATE_SEED_STRIDE = 1000

# Refine only while the new request extends the previous one by at most this many typed characters.
_MAX_TYPED_FOR_REFINE = 16


@dataclass(frozen=True)
class _Suggestion:
    """What the model wrote for the last single request (an editor's keystroke), to refine on the next one."""

    request: InfillRequest
    raw_text: str  # the middle, up to its EOS

    def refine_seed(self, request: InfillRequest, canvas_length: int, encode, special) -> list[int] | None:
        """A starting canvas for `request` if the user only typed at the cursor since this one, else None.

        Typed text that the suggestion predicted is cut from its front (the canvas shifts with the cursor);
        otherwise the old middle is kept for the model to repair. Re-encoded, so the canvas size may change
        (a block suggestion at a line's start seeds the line-mode canvas once the user types on that line).
        """
        old, new = self.request, request
        typed = new.prefix[len(old.prefix) :]
        if new.suffix != old.suffix or not new.prefix.startswith(old.prefix) or len(typed) > _MAX_TYPED_FOR_REFINE:
            return None
        text = self.raw_text[len(typed) :] if self.raw_text.startswith(typed) else self.raw_text
        return canvas_target(encode(text)[: canvas_length - 1], canvas_length, special)


@dataclass
class _PromptCache:
    """The encoder cache of the last single-request prompt, for the next keystroke's request."""

    prompt: Prompt
    cache: DynamicCache
    prediction: torch.Tensor | None = None  # causal families: Drafter.prefill's logits after the prompt [1 + B, V]

    @classmethod
    def read_so_far(cls, prompt: Prompt, cache: DynamicCache) -> "_PromptCache":
        """What a cancelled prefill read of `prompt` into `cache`, kept so the keystroke that cancelled it goes on
        from there instead of reading the file again."""
        read = cache.get_seq_length()
        return cls(Prompt(prompt.input_ids[:read], prompt.position_ids[:read], prompt.canvas_start), cache)

    def reusable_tokens(self, prompt: Prompt, sliding_window: int) -> int:
        """Length of the common (id, position) prefix, less one so at least one token is encoded."""
        if max(len(self.prompt.input_ids), len(prompt.input_ids)) >= sliding_window:
            return 0  # a sliding-window layer that filled its window has dropped what a crop would go back to
        old = list(zip(self.prompt.input_ids, self.prompt.position_ids, strict=True))
        new = list(zip(prompt.input_ids, prompt.position_ids, strict=True))
        common = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
        return min(common, len(prompt.input_ids) - 1)


PromptSlot = Literal["_prompt_cache", "_plain_cache"]  # the Engine attributes that keep a keystroke's caches


class Engine:
    """Holds one loaded model. Between calls it keeps only the last single request's prompt cache and suggestion,
    which the next keystroke's request reuses (`forget_previous()` drops them)."""

    def __init__(self, config: EngineConfig, loaded: LoadedModel | None = None):
        # All cores would be torch's choice, but a step's threads wait for each other: when anything else runs
        # (the editor, a build), one busy core makes every step wait. The wide forwards (a prompt, the reranker's
        # scores) also take the cores nothing else uses (engine.threads). Measured in benchmarks/RESULTS.md.
        threads = config.threads or max(1, (os.cpu_count() or 2) // 2)
        torch.set_num_threads(threads)
        self.thread_policy = ThreadPolicy(threads, config.prompt_threads or os.cpu_count() or 1)
        if config.candidates < 1:
            raise ConfigError(f"candidates must be at least 1, not {config.candidates}")
        if config.line_start_holes not in ("block", "line"):
            raise ConfigError(f"line_start_holes must be 'block' or 'line', not {config.line_start_holes!r}")
        if config.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, not {config.sampler!r}")
        self.config = config
        self.loaded = loaded or load_model(config.model, config.device, config.allow_download, config.quantize)
        if config.prepack_weights and self.loaded.device.type == "cpu":
            prepack_linears(self.loaded.model)
        limits = self.loaded.limits
        self.budget = ContextBudget(
            max_prefix_tokens=min(config.max_prefix_tokens, limits.max_prefix_tokens),
            max_suffix_tokens=min(config.max_suffix_tokens, limits.max_suffix_tokens),
            line_canvas=min(config.line_canvas, limits.max_canvas),
            block_canvas=min(config.block_canvas, limits.max_canvas),
        )
        self.settings = DenoiseSettings(
            max_steps=config.max_steps,
            entropy_bound=config.entropy_bound,
            t_max=config.t_max,
            t_min=config.t_min,
            confidence_threshold=config.confidence_threshold,
            no_copy_noise=config.no_copy_noise,
            accept_floor=config.accept_floor,
            floor_from_left=config.floor_from_left,
            sampler=config.sampler,
            unmask_threshold=config.unmask_threshold,
        )
        self.canvas = _canvas_model(self.loaded, config)
        self.refine_settings = dataclasses.replace(
            self.settings, max_steps=config.refine_steps, t_max=config.t_min, stability_steps=0
        )
        adapter = self.loaded.adapter
        causal = self.loaded.family in ("causal", "coder")
        self.drafter = Drafter(self.loaded.model, adapter, self.thread_policy.for_forward) if causal else None
        self.postprocess_options = PostprocessOptions(
            drop_syntax_errors=config.drop_syntax_errors,
            past_dedents=self.drafter is not None and config.rerank and config.rerank_past_dedents,
        )
        self.draft_settings = DraftSettings(
            block_size=(adapter.config.block_size if config.block_size < 0 else config.block_size) if adapter else 0,
            draft_threshold=config.draft_threshold,
            verify=config.verify_drafts,
            lookup_tokens=config.lookup_tokens,
            fallback_masks=config.fallback_masks,
            fallback_blocks=config.fallback_blocks,
        )
        self._line_tokens = functools.lru_cache(maxsize=1 << 16)(self.count_tokens)
        self._prompt_cache: _PromptCache | None = None
        self._plain_cache: _PromptCache | None = None  # causal families' reranking: the file up to the cursor's line
        self._suggestion: _Suggestion | None = None
        self._shown: tuple[InfillRequest, Completion] | None = None  # causal families: the last single request's

    def forget_previous(self) -> None:
        """Make the next request start afresh: no prompt cache reuse, no refinement, no typeahead (benchmarks,
        tests)."""
        self._prompt_cache, self._plain_cache, self._suggestion, self._shown = None, None, None, None

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def budget_tokens(self, text: str) -> int:
        """Tokens of `text` for cutting the context, summed over its lines, each counted once and remembered.

        Context building counts the same lines keystroke after keystroke; a line's count is its own tokens,
        which differs from the whole text's by at most one token at a line break. The prompt itself is
        tokenized exactly and truncated to the budget, so the approximation never overflows it.
        """
        return sum(self._line_tokens(line) for line in text.splitlines(keepends=True))

    def _encode(self, text: str) -> list[int]:
        return encode_text(self.loaded.tokenizer, text)

    def plan(self, request: InfillRequest) -> tuple[InfillContext, list[str]]:
        """The context the engine would use for `request`: mode, canvas size and cut points (`--explain`)."""
        if "\x00" in request.prefix or "\x00" in request.suffix:
            raise InputError("the text contains NUL bytes: a binary file cannot be completed")
        text = request.prefix + request.suffix
        context, warnings = build_context(
            text, len(request.prefix), request.language, self.budget_tokens, self.budget, request.tree
        )
        one_line = context.inserts_lines and self.config.line_start_holes == "line"
        if (context.mode == "skip" and request.force) or one_line:
            context = dataclasses.replace(context, mode="line", canvas_tokens=self.budget.line_canvas)
        if request.canvas_tokens is not None:
            canvas = max(2, min(request.canvas_tokens, self.loaded.limits.max_canvas))
            context = dataclasses.replace(context, canvas_tokens=canvas)
        return context, warnings

    def complete(
        self,
        requests: list[InfillRequest],
        seeds: list[int] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """Complete every request; those sharing a canvas size and step count are denoised together, each as
        `candidates` drafts (seeds `seed`, `seed + CANDIDATE_SEED_STRIDE`, ...) of which post-processing keeps the
        best. Order is kept."""
        if len(requests) == 1 and (typed_through := self._typed_through(requests[0])) is not None:
            self._shown = (requests[0], typed_through)
            return [typed_through]
        seeds = seeds if seeds is not None else [self.config.seed] * len(requests)
        plans = [self.plan(r) for r in requests]
        drafts: list[list[_Draft]] = [[] for _ in requests]
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (canvas, steps) -> rows of (request, seed)
        for index, (context, _) in enumerate(plans):
            if context.mode != "skip":
                steps = self.config.line_steps if context.mode == "line" else self.config.max_steps
                # Drafting is greedy: more candidates would be the same middle again.
                drafts_per_hole = 1 if self.drafter is not None else self.config.candidates
                rows = [(index, seeds[index] + j * CANDIDATE_SEED_STRIDE) for j in range(drafts_per_hole)]
                groups.setdefault((context.canvas_tokens, steps), []).extend(rows)
        for (canvas, steps), rows in groups.items():
            settings = dataclasses.replace(self.settings, max_steps=steps)
            group = self._denoise_group(canvas, settings, rows, requests, plans, should_stop)
            for (index, _), row_drafts in zip(rows, group, strict=True):
                drafts[index].extend(row_drafts)
        completions = [self._best(request_drafts, *plan) for request_drafts, plan in zip(drafts, plans, strict=True)]
        self._shown = (requests[0], completions[0]) if len(requests) == 1 and self.drafter is not None else None
        return completions

    def _typed_through(self, request: InfillRequest) -> Completion | None:
        """The rest of the previous request's suggestion, where the user has since typed its start and nothing else
        changed (`typeahead`); None where a decode is needed. Without a forward, so a keystroke that agrees with
        the ghost text costs only planning; the file it shows is the one shown before, already checked.

        Kept whatever the new plan says (typing a suggested quote puts the cursor in a string, where a request
        would stay quiet): the suggestion was judged worth showing at its start. A rest that is only whitespace
        is not kept: what comes after it is decoded afresh (the next line)."""
        if not self.config.typeahead or self._shown is None:
            return None
        began = time.perf_counter()
        old, shown = self._shown
        typed = request.prefix[len(old.prefix) :]
        same_place = request.suffix == old.suffix and request.language == old.language
        if not (typed and same_place and request.prefix.startswith(old.prefix) and shown.text.startswith(typed)):
            return None
        rest = shown.text[len(typed) :]
        if not rest.strip():
            return None
        context, warnings = self.plan(request)
        return dataclasses.replace(
            shown,
            text=rest,
            raw_text=shown.raw_text.removeprefix(typed),
            steps=0,
            seconds=time.perf_counter() - began,
            context=context,
            warnings=warnings,
            reused_prompt_tokens=0,
            refined=True,
            tokens=0,
        )

    def _best(self, drafts: list["_Draft"], context: InfillContext, warnings: list[str]) -> Completion:
        """The completion to show: post-processing filters and ranks the drafts of one hole."""
        if not drafts:  # nothing to complete here (mode "skip")
            return Completion("", "", 0, 0.0, 0.0, context, warnings)
        candidates = [Candidate(text=d.raw, score=d.score, draft=i) for i, d in enumerate(drafts)]
        ranked = postprocess(candidates, context, self.postprocess_options)
        chosen = drafts[ranked[0].draft] if ranked else max(drafts, key=lambda d: d.confidence)
        return Completion(
            ranked[0].text if ranked else "",
            chosen.raw,
            chosen.steps,
            sum(d.seconds for d in drafts),
            chosen.confidence,
            context,
            warnings,
            chosen.reused_prompt_tokens,
            chosen.refined,
            chosen.tokens,
        )

    def _denoise_group(self, canvas, settings, rows, requests, plans, should_stop) -> list[list["_Draft"]]:
        """One batched run over `rows` (request index, seed) that share a canvas size and step count: each row's
        drafts (one a canvas; a causal model's candidates when reranking)."""
        loaded = self.loaded
        if self.drafter is not None:
            return [self._draft(canvas, requests[i], plans[i][0], len(rows) == 1, should_stop) for i, _ in rows]
        prompts = [self._prompt(plans[i][0], canvas) for i, _ in rows]
        began = time.perf_counter()
        batch = collate_prompts(prompts, canvas, loaded.special.pad, str(loaded.device))
        single = requests[rows[0][0]] if len(rows) == 1 else None
        row_seeds = [seed for _, seed in rows]
        result, reused, refined = self._denoise(batch, prompts, settings, row_seeds, single, should_stop)
        seconds = (time.perf_counter() - began) / len(rows)
        return [
            [
                _Draft(
                    self._decode_middle(result.tokens[row].tolist()),
                    result.steps[row],
                    seconds,
                    result.confidence[row],
                    reused,
                    refined,
                    self._written(result.tokens[row].tolist()),
                    result.confidence[row],
                )
            ]
            for row in range(len(rows))
        ]

    def _prompt(self, context: InfillContext, canvas: int) -> Prompt:
        """The model's prompt for a planned hole, prefix and suffix cut to the token budgets."""
        return build_prompt(
            self._encode(context.prefix)[-self.budget.max_prefix_tokens :],
            self._encode(context.suffix)[: self.budget.max_suffix_tokens],
            canvas,
            self.loaded.layout,
            self.loaded.special,
        )

    def _head(self, context: InfillContext) -> list[int]:
        """The prefix's tokens up to the cursor's line (within the prefix budget, which the line itself shares)."""
        line_before = last_line(context.prefix)
        head = self._encode(context.prefix[: len(context.prefix) - len(line_before)])
        return head[-max(1, self.budget.max_prefix_tokens - self.count_tokens(line_before)) :]

    def _cursor_line(self, context: InfillContext) -> tuple[list[int], str]:
        """The cursor's line up to the cursor as tokens, with the last one taken back for token healing
        (`heal_tokens`, engine.healing), and that token's text, which the middle writes again first."""
        line_ids = self._encode(last_line(context.prefix))
        if self.config.heal_tokens and line_ids:
            return take_back(line_ids, self._vocabulary)
        return line_ids, ""

    def _fim_prompt(self, context: InfillContext, canvas: int, head: list[int]) -> tuple[Prompt, str]:
        """A causal model's FIM prompt, `<|fim_prefix|>` head `<|fim_suffix|>` suffix `<|fim_middle|>` and then the
        cursor's line up to the cursor as the middle's start, and the healed text the middle writes first. `head`:
        `_head(context)`, which the caller keeps for `_file_head`.

        Why the line goes last: typing on a line changes only the prompt's last tokens, so the next keystroke
        reuses the cache of everything before them, the suffix included (its re-read was half of a keystroke's
        time on CPU-2, RESULTS.md). A hole at a line's start (every HumanEval hole) gets the prompt it always had.
        """
        line_ids, heal = self._cursor_line(context)
        suffix = self._encode(context.suffix)[: self.budget.max_suffix_tokens]
        ids = build_prompt(head, suffix, canvas, self.loaded.layout, self.loaded.special).input_ids
        ids = ids + line_ids
        return Prompt(ids, list(range(len(ids))), len(ids)), heal

    def _file_head(self, head: list[int]) -> list[int]:
        """The file before the cursor's line as the plain continuation and the reranker read it
        (engine.prompt.plain_file_head): the FIM prompt's own start where the model has FIM tokens, so that one
        prefill serves both decodes (it was read twice: SantaCoder's holes now take 1.44x less time, same
        completions, RESULTS.md); nothing for an empty head. `head`: `_head(context)`, as `_fim_prompt` laid it out."""
        return plain_file_head(head, self.loaded.special) if head else head

    def _draft(self, canvas: int, request: InfillRequest, context: InfillContext, single: bool, should_stop):
        """A causal model's drafts for one hole (left to right, or drafting blocks with blockfill-coder's adapter):
        its FIM middle, and with `rerank` also the plain continuation of the prefix, each cut at every line end and
        scored by engine.rerank (post-processing ranks parse-clean drafts first, then by that score).

        Both start after the cursor's line (`_fim_prompt`) less its last token, whose text they write again first
        (`heal_tokens`, engine.healing: a file never splits `);` from the line break after it, as a cursor there
        does). For a single request (an editor's keystroke) the previous request's KV caches (the FIM prompt's,
        the plain file's up to the cursor's line) are reused up to their first changed token.
        """
        began = time.perf_counter()
        head = self._head(context)
        prompt, heal = self._fim_prompt(context, canvas, head)
        file_head = None
        if self.config.rerank and (plain_head := self._file_head(head)):
            head_prompt = Prompt(plain_head, list(range(len(plain_head))), len(plain_head))
            file_head = self._prefill(head_prompt, "_plain_cache" if single else None, should_stop)
        start = file_head[1] if file_head is not None else None
        prediction, fim, reused = self._prefill(prompt, "_prompt_cache" if single else None, should_stop, start)
        new_middle = functools.partial(
            Middle,
            self.draft_settings,
            canvas,
            self._end_rule(context, heal),
            heal=heal,
            vocabulary=self._vocabulary if heal else None,
        )
        fim_middle = new_middle(reference=lambda: prompt.input_ids, lead=prompt.input_ids)
        fim_middle.begin(prediction)
        plain_middle = None
        if file_head is not None:
            plain_middle = self._plain_continuation(context, prompt, file_head, fim_middle, new_middle)
        if plain_middle is not None and self.config.decode_side_by_side and self.drafter.can_share_a_cache:
            shared = SharedCache(fim.cache, [len(prompt.input_ids), len(file_head[1].prompt.input_ids)])
            patience = self.config.line_plain_patience
            if context.mode != "line" or patience < 0:  # the plain continuation always finishes
                patience = None
            results = decode_middles(self.drafter, shared, [fim_middle, plain_middle], should_stop, patience)
        else:
            results = decode_middles(self.drafter, SharedCache(fim.cache), [fim_middle], should_stop)
            if plain_middle is not None:  # after it, in the file head's own cache, cut back to the head after
                head_cache = file_head[1]
                results += decode_middles(self.drafter, SharedCache(head_cache.cache), [plain_middle], should_stop)
                head_cache.cache.crop(len(head_cache.prompt.input_ids) - head_cache.cache.get_seq_length())
        drafts = []
        if file_head is not None:
            drafts = self._reranked(context, file_head, results, reused, heal, should_stop)
        seconds = time.perf_counter() - began
        if not drafts:  # no reranking, or nothing survives post-processing: the FIM middle stands for the hole
            return [dataclasses.replace(self._causal_draft(results[0], reused, heal), seconds=seconds)]
        return [dataclasses.replace(d, seconds=seconds / len(drafts)) for d in drafts]

    def _plain_continuation(
        self,
        context: InfillContext,
        prompt: Prompt,
        file_head: tuple[torch.Tensor, "_PromptCache", int],
        fim_middle: Middle,
        new_middle: Callable[..., Middle],
    ) -> Middle:
        """The plain continuation of the prefix: the file's head (`_file_head`, `file_head` its prefill: the first
        keys of the FIM prompt's cache too, so it can decode beside the FIM middle there), then the cursor's line
        less its last token, whose text it writes again first, as the FIM middle does. Its lookup drafts come
        from the FIM middle so far (the two often start alike; its drafts too, verified beside it) and then the
        FIM prompt."""
        head_next, head_cache, _ = file_head
        line_ids, _ = self._cursor_line(context)
        plain = head_cache.prompt.input_ids + line_ids
        middle = new_middle(
            reference=lambda: [*prompt.input_ids, *plain[-LOOKUP_NGRAM:], *fim_middle.so_far()], lead=plain
        )
        if line_ids:
            middle.read_first(line_ids)
        else:
            middle.begin(head_next)
        return middle

    def _reranked(
        self,
        context: InfillContext,
        file_head: tuple[torch.Tensor, "_PromptCache", int],
        results: list[DraftResult],
        reused: int,
        heal: str,
        should_stop: Callable[[], bool] | None,
    ) -> list["_Draft"]:
        """Every line-end cut of the FIM middle and the plain continuation in `results` as a draft scored by
        engine.rerank; none where no cut survives post-processing.

        Reranking reads the file up to the cursor's line from `file_head` (`_prefill`'s of `_file_head`), and each
        candidate with the cursor line's start before it, so that no token is split at the cursor (`return ` + `x`
        is not how `return x` tokenizes).
        """
        line_before = last_line(context.prefix)
        head_next, head_cache, _ = file_head
        plain_cache = head_cache.cache  # the file up to the cursor's line
        drafts: dict[str, _Draft] = {}  # shown text -> the first draft that shows it
        standings: dict[str, tuple] = {}  # shown text -> how it ranks before its score
        standing = standing_in(context)
        for result in filter(None, results):  # a middle given up (`line_plain_patience`) offers no cut
            whole = self._causal_draft(result, reused, heal)
            for raw in line_prefixes(whole.raw):
                shown = postprocess([Candidate(raw, 0.0)], context, self.postprocess_options)
                if shown and shown[0].text not in drafts:
                    drafts[shown[0].text] = dataclasses.replace(whole, raw=raw)
                    standings[shown[0].text] = standing(shown[0])
        # Post-processing ranks by standing before score, so only the drafts of the best standing need a score (a
        # block's cuts inside an open branch add a syntax error), and none when one draft stands alone.
        best = min(standings.values(), default=None)
        contenders = [text for text, rank in standings.items() if rank == best]
        window = self.config.rerank_suffix_tokens
        continuations = [
            self._encode(line_before + shown + context.suffix)[: self.count_tokens(line_before + shown) + window]
            for shown in contenders
        ]
        scores = [0.0] * len(contenders)
        if len(contenders) > 1:
            with self.thread_policy.for_forward(max(map(len, continuations))):
                scores = file_log_likelihoods(self.loaded.model, plain_cache, head_next[0], continuations, should_stop)
        scored = dict(zip(contenders, scores, strict=True))
        return [dataclasses.replace(d, score=scored.get(text, -math.inf)) for text, d in drafts.items()]

    def _prefill(
        self,
        prompt: Prompt,
        slot: PromptSlot | None,
        should_stop: Callable[[], bool] | None = None,
        start: "_PromptCache | None" = None,
    ) -> tuple[torch.Tensor, "_PromptCache", int]:
        """A causal model's KV cache of `prompt`, reusing the one the last keystroke left in `slot` (None: a batch,
        which keeps nothing) up to the first changed token: the logits after the prompt [1 + B, V], the cache, and the
        tokens reused. The cache is the base model's own, so reuse is exact. The same prompt again (the file up to
        the cursor's line, keystroke after keystroke on one line) reads nothing: its cache is cut back to it and
        its prediction kept. A cancelled prefill leaves what it read in `slot`, so the keystroke that cancelled
        it goes on from there instead of reading the file again.

        `start`: a cache whose prompt begins `prompt` (the file's head, for the FIM prompt), copied where it covers
        more than the slot's own reuse; its tokens are not counted as reused from the last keystroke."""
        previous: _PromptCache | None = getattr(self, slot) if slot else None
        reused, cache = 0, DynamicCache(config=self.loaded.model.config)
        window = getattr(self.loaded.model.config, "sliding_window", None) or 1 << 30
        if previous is not None:
            if previous.prompt == prompt and previous.prediction is not None:
                length = len(prompt.input_ids)
                if length < previous.cache.get_seq_length():  # a decode appended to it
                    previous.cache.crop(length - previous.cache.get_seq_length())
                return previous.prediction, previous, length
            reused = previous.reusable_tokens(prompt, window)
            cache = previous.cache if reused else cache
        cached = reused  # tokens the prefill does not read; `reused` counts those the last keystroke left
        if (shared := start.reusable_tokens(prompt, window) if start is not None else 0) > reused:
            cached, cache = shared, copy.deepcopy(start.cache)
            cache.crop(cached - cache.get_seq_length())
        try:
            block = self.draft_settings.block_size
            prediction = self.drafter.prefill(prompt.input_ids, cache, cached, should_stop, block)
        except Cancelled:
            if slot:
                setattr(self, slot, _PromptCache.read_so_far(prompt, cache))
            raise
        kept = _PromptCache(prompt, cache, prediction)
        if slot:
            setattr(self, slot, kept)  # decoding appends to its cache; the next prefill crops it
        return prediction, kept, reused

    def _end_rule(self, context: InfillContext, healed: str = "") -> Callable[[list[int]], int | None]:
        """Where a middle is over that first writes `healed`, the end of the cursor's line the prompt left out."""
        special, past_dedents = self.loaded.special, self.postprocess_options.past_dedents
        line_before = last_line(context.prefix)
        return end_rule(
            self._token_text, special.stop_ids, context.mode, line_before, context.suffix, past_dedents, healed
        )

    @property
    def _vocabulary(self) -> Vocabulary:
        """Every token's text, for token healing (built on the first healed prompt)."""
        return vocabulary_of(self.loaded.tokenizer)

    def _causal_draft(self, result: DraftResult, reused: int, healed: str = "") -> "_Draft":
        """A decoded middle as a draft (its seconds are set by the caller), without the `healed` text it wrote
        first (the prompt's last token, taken back: engine.healing)."""
        text = self.loaded.tokenizer.decode(result.tokens, skip_special_tokens=True)
        text = text.removeprefix(healed)
        # The prompt's forward writes the first token: counted as a step, a left-to-right model writes one a step.
        return _Draft(text, result.steps + 1, 0.0, result.confidence, reused, False, result.written, result.confidence)

    def _denoise(self, batch, prompts, settings, seeds, single: InfillRequest | None, should_stop):
        """The canvas loop for one group; for a single request (an editor's keystroke) to DiffusionGemma, reuse the
        previous prompt's encoder cache and refine the previous suggestion. Returns (result, reused tokens, refined).
        """
        loaded = self.loaded
        reused, cache, seed_canvas = 0, None, None
        if loaded.family != "diffusion_gemma":
            return denoise(self.canvas, batch, settings, seeds, should_stop, stop_ids=loaded.special.stop_ids), 0, False
        if single is not None:
            previous = self._prompt_cache
            if previous is not None:
                reused = previous.reusable_tokens(prompts[0], loaded.model.config.text_config.sliding_window)
            cache = previous.cache if reused else encoder_cache(loaded.model)
            try:
                encode_prompts(loaded.model, batch, cache, reused, should_stop)
            except Cancelled:
                self._prompt_cache = _PromptCache.read_so_far(prompts[0], cache)
                raise
            self._prompt_cache = _PromptCache(prompts[0], cache)  # before denoising: the cache is cropped in place
            if self._suggestion is not None and self.config.refine_steps > 0:
                canvas = batch.canvas_position_ids.shape[1]
                seed = self._suggestion.refine_seed(single, canvas, self._encode, loaded.special)
                if seed is not None:
                    settings, seed_canvas = self.refine_settings, torch.tensor([seed])
        result = denoise(self.canvas, batch, settings, seeds, should_stop, cache, seed_canvas)
        if single is not None:
            self._suggestion = _Suggestion(single, self._decode_middle(result.tokens[0].tolist()))
        return result, reused, seed_canvas is not None

    @functools.cache  # noqa: B019 (one engine per model, alive as long as the model)
    def _token_text(self, token: int) -> str:
        return self.loaded.tokenizer.decode([token])

    def _middle_end(self, tokens: list[int]) -> int | None:
        """Index of the canvas's first end token (EOS, padding, a FIM end), or None when it has none."""
        stops = self.loaded.special.stop_ids
        return next((i for i, t in enumerate(tokens) if t in stops), None)

    def _written(self, tokens: list[int]) -> int:
        """Canvas tokens up to and including the first end token."""
        end = self._middle_end(tokens)
        return len(tokens) if end is None else end + 1

    def _decode_middle(self, tokens: list[int]) -> str:
        """The canvas up to its first end token: the middle the model proposes."""
        return self.loaded.tokenizer.decode(tokens[: self._middle_end(tokens)], skip_special_tokens=True)


def _canvas_model(loaded: LoadedModel, config: EngineConfig) -> CanvasModel | None:
    """The loaded model as the canvas loop's family; None for the causal families (engine.coder decodes them)."""
    if loaded.family == "diffusion_gemma":
        return DiffusionGemma(loaded.model)
    if loaded.family == "masked_diffusion":
        edits = None
        if loaded.edit_tokens is not None and config.variable_length:
            edits = CanvasEdits(*loaded.edit_tokens, config.max_expansions, loaded.special.eos)
        return MaskedDiffusion(loaded.model, loaded.mask_token_id, config.approximate_cache, edits)
    if loaded.family == "block_diffusion":
        layout = loaded.diffusion
        return BlockDiffusion(loaded.model, loaded.mask_token_id, layout.block_size, layout.shift)
    return None
