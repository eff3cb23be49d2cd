"""The one engine configuration. CLI flags, LSP initializationOptions and didChangeConfiguration all map onto it.

Overrides come as a mapping or as `key=value` strings; unknown keys and values of the wrong type are errors
(nanoGPT's configurator habit, without `exec`).
"""

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import ConfigError


@dataclass(frozen=True)
class EngineConfig:
    model: str = "blockfill-coder"  # a name from `blockfill models list`, a checkpoint directory, or a cached hub id
    device: str = "auto"  # "auto" (CUDA where present), "cpu", "cuda", "cuda:1", ...
    allow_download: bool = False  # let a hub id be fetched; off so nothing leaves the machine unasked
    # DiffusionGemma weights: "int4" (the 26B-A4B in 14.5 GB, a 24 GB card), "int8" or "none" (bf16 on a GPU, 50.5 GB).
    # Causal models on the CPU: "int8-dynamic" (torch's dynamic int8, 1.7x faster a token; RESULTS.md).
    quantize: str = "none"
    # On the CPU: fp32 Linear layers with their weights laid out once for oneDNN's kernels (engine.models.prepack):
    # the same products, a forward of several tokens 2x faster (RESULTS.md), twice the weights' memory.
    prepack_weights: bool = True
    threads: int = 0  # CPU threads for torch; 0: half the cores, so an editor and a build beside it keep theirs
    # At most this many CPU threads for the forwards that read many tokens at once (a prompt, the reranker's scores),
    # where other processes leave the cores idle (engine.threads); 0: every core. 1.9x faster reading a prompt.
    prompt_threads: int = 0
    seed: int = 0  # base seed; a request's canvas noise depends only on it and the request
    max_steps: int = 16  # denoising steps at most per block canvas
    line_steps: int = 8  # and per rest-of-line canvas (24 tokens: half the steps, measured in RESULTS.md)
    refine_steps: int = 2  # after a keystroke, steps that repair the previous suggestion (0: start from noise)
    entropy_bound: float = 0.1  # entropy-bound sampler: how much uncertainty one step may accept
    t_max: float = 0.8  # temperature at the first denoising step
    t_min: float = 0.4  # temperature at the last
    no_copy_noise: bool = False  # never propose the random token a renoised canvas position holds
    accept_floor: bool = True  # accept at least canvas * (step + 1) / steps positions a step: no noise survives
    floor_from_left: bool = False  # the floor accepts the leftmost positions first instead of the most certain
    confidence_threshold: float = 0.005  # adaptive stop: mean entropy under this (and a stable canvas)
    sampler: str = "entropy"  # which positions a step accepts: "entropy" (bound), "confidence" or "margin"
    unmask_threshold: float = 0.9  # confidence / margin samplers: accept every position at least this sure
    approximate_cache: bool = True  # masked diffusion: prefix and suffix keys computed once (Fast-dLLM's dual cache)
    variable_length: bool = True  # DreamOn checkpoints: the canvas grows by <|expand|> and shrinks by <|delete|>
    max_expansions: int = 64  # and grows by at most this many tokens past the canvas it started from
    max_prefix_tokens: int = 768  # context before the cursor (capped by what the model was trained on)
    max_suffix_tokens: int = 256  # context after the cursor (likewise capped)
    line_canvas: int = 24  # canvas tokens for a rest-of-line completion
    block_canvas: int = 128  # canvas tokens for a block completion (capped by the model's largest canvas)
    # A hole at a line's start before code: "block" (the model decides how many lines) or "line" (one line). Block:
    # with the base, one line gains 5.8 points on single-line HumanEval holes and loses 14 on multi-line (RESULTS).
    line_start_holes: str = "block"
    drop_syntax_errors: bool = True  # show nothing rather than a completion that adds a syntax error
    candidates: int = 1  # drafts denoised together per hole (one seed each); post-processing ranks them, best shown
    # blockfill-coder: masked positions drafted a step; -1: the adapter's own block size; 0: none, the base left to
    # right. With lookup drafts first and the masks' where there are none (and the fallback block below), the
    # shipped adapter settles 2.06 tokens a step on SantaCoder's 120 holes and 1.97 on HumanEval's 207 single-line
    # ones, against lookup's 1.41 and 1.37 (RESULTS.md, seventh run).
    block_size: int = -1
    # blockfill-coder: a drafted token is tried while at least this likely. A wrong one costs a verified row, a
    # right one a step: 0.3 was faster than 0.6 on both suites, 0.0 no better, the middles the same (RESULTS.md).
    draft_threshold: float = 0.3
    verify_drafts: bool = True  # blockfill-coder: keep a draft only where the base predicts the same token
    # blockfill-coder: a step with drafts also runs blocks of `fallback_masks` masks behind each of its first
    # `fallback_blocks` tokens, reading only up to it, so the step after a failed draft verifies their drafts instead
    # of settling one token. Behind the first token, 2 masks against none: 1.79 -> 1.87 tokens a step on 24
    # single-line holes (0.99x the time), 2.21 -> 2.30 on 40 SantaCoder ones (1.06x faster); 4 drafted no more and
    # cost more rows. Behind the first 2 or 3 tokens: 1.91 / 1.94 and 2.33 / 2.34 tokens a step, but no faster
    # (0.94-1.01x): on this CPU the rows cost what the tokens save (RESULTS.md).
    fallback_masks: int = 2
    fallback_blocks: int = 1
    # Causal families: tokens a step copied from the prompt (or the FIM middle, for the plain continuation) where
    # the middle's last 3 tokens recur there, verified by the base (engine.coder), before the masks' drafts; 0: off.
    # Measured on HumanEval holes: the same middles in 1.4-1.7 tokens a forward, 1.06-1.14x faster (RESULTS.md).
    lookup_tokens: int = 8
    # Causal families: also continue the prefix without the suffix, cut both middles at each line end and show the
    # one that makes the file likeliest (engine.rerank), scored over this many suffix tokens. Measured with the base:
    # single-line HumanEval 51.7 -> 75.4 %, multi-line 32 -> 34 %, at about twice the time (RESULTS.md).
    rerank: bool = True
    rerank_suffix_tokens: int = 32
    # With rerank: the FIM middle and the plain continuation decode side by side, one forward a step for both in the
    # FIM prompt's cache (engine.coder.SharedCache). Off: one after the other, the plain continuation in its own
    # cache, copying lookup drafts from the whole FIM middle (as for models with sliding-window layers, whose keys
    # one mask cannot hide). The same middles; a hole 1.19x faster on single-line HumanEval, 1.05x on SantaCoder, a
    # reused keystroke 1.21x (RESULTS.md).
    decode_side_by_side: bool = True
    # Side by side in line mode: once the FIM middle is over, the plain continuation gets at most this many more
    # steps before it is given up (the FIM middle's cuts stand alone); -1: it always finishes. A speed-for-quality
    # trade, off by default: at 0, HumanEval's single-line holes typed partway 83.5 -> 82.0 %, a hole 1.18x and a
    # reused keystroke about 1.28x faster; at 2, 82.5 % and no faster (RESULTS.md, ninth run).
    line_plain_patience: int = -1
    # With rerank: a block's middles run on past a dedent, down to the suffix's first line's indentation, and the
    # reranker chooses where to cut them (a multi-line hole often closes a branch and goes on). Multi-line HumanEval
    # 17 -> 18 of 50 holes, and 15 -> 18 of 50 held-out ones; single-line and SantaCoder unchanged (RESULTS.md).
    rerank_past_dedents: bool = True
    # Causal families: both decodes (the FIM middle, and with rerank the plain continuation) take back the cursor
    # line's last token and write its text again first (engine.healing), so a cursor that splits `);` from the line
    # break after it reads as the tokenizer reads a file. SantaCoder 79 -> 88 of 120 on the plain continuation,
    # 90 with the FIM middle (RESULTS.md); HumanEval's holes start lines, where nothing is taken back.
    heal_tokens: bool = True
    # Causal families, an editor's keystroke: where the user typed the start of the suggestion shown for the previous
    # request (same suffix), the rest of it is shown at once, without a forward, as Copilot-class tools keep ghost
    # text the user types through. Off: every keystroke decodes afresh (with the prompt caches reused).
    typeahead: bool = True


Config = TypeVar("Config")


def _coerce(name: str, kind: type, value: Any) -> Any:
    """Accept the field's own type, or a string that parses as it (from the command line)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(kind) is list and typing.get_args(kind) == (int,):
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list) and items:
            return [_coerce(name, int, item.strip() if isinstance(item, str) else item) for item in items]
    raise ConfigError(f"setting {name!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def with_overrides(overrides: Mapping[str, Any], base: Config | None = None) -> Config:
    """`base` (default: the engine's defaults) with `overrides` applied; raises ConfigError naming every bad key.

    Serves any configuration dataclass (the engine's, training's) whose fields are bool, int, float, str or
    list[int] (a comma-separated string on the command line).
    """
    base = base if base is not None else EngineConfig()
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values = {k: _coerce(k, fields[k].type, v) for k, v in overrides.items()}
    return dataclasses.replace(base, **values)


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """`["max_steps=8", "device=cpu"]` -> `{"max_steps": "8", "device": "cpu"}`."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {item!r}")
        parsed[key.strip()] = value
    return parsed
