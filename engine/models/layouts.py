"""The public diffusion code checkpoints, recognised by their config.json and loaded onto transformers' own Qwen2 /
Qwen3 classes: their weights use Qwen2 / Qwen3 module names, so their own Python (`auto_map`) is never run.

| layout | config.json | graph | family |
|---|---|---|---|
| Dream, Dream-Coder, DiffuCoder | `model_type: "Dream"`, `mask_token_id` | Qwen2 | masked diffusion, logits shifted |
| DreamOn | Dream's, plus `<|expand|>` and `<|delete|>` in the tokenizer | Qwen2 | masked, shifted, variable length |
| Open-dCoder | `model_type: "qwen2"` with `auto_map`, a mask token (`<M>`) in the tokenizer | Qwen2 | masked, shifted |
| SDAR | `model_type: "sdar"`, `block_size`, `mask_token_id` | Qwen3 | block diffusion, no shift |
| Fast-dLLM v2 | `model_type: "Fast_dLLM_Qwen"`, `bd_size`; the mask token in the tokenizer | Qwen2 | block, shifted |

Ids come from each checkpoint's own config and tokenizer, never from constants here.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from transformers import (
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from engine.errors import ModelLoadError

# How the mask token is spelled where a tokenizer does not name it as `mask_token` (Fast-dLLM v2, SDAR).
_MASK_SPELLINGS = ("|<MASK>|", "<|MASK|>", "<|mask|>", "<M>", "[MASK]")
# Fields that name a checkpoint's own classes: dropped before the config becomes transformers' own.
_FOREIGN_FIELDS = ("auto_map", "model_type", "architectures", "transformers_version")
# DreamOn's added tokens: a masked position predicted as the first becomes two masks, one predicted as the second is
# removed (variable-length infilling).
_EDIT_SPELLINGS = ("<|expand|>", "<|delete|>")


@dataclass(frozen=True)
class DiffusionLayout:
    name: str  # the public checkpoint family, for messages and `models list`
    family: str  # "masked_diffusion" or "block_diffusion" (engine.families)
    qwen3: bool  # the graph: Qwen3 (q/k norms) or Qwen2
    shift: bool  # logits shifted by one: position i's token is predicted at i - 1
    block_size: int | None  # block diffusion's block, from the config
    fim_layout: str  # engine.prompt layout
    variable_length: bool = False  # DreamOn: the canvas grows and shrinks by its expand and delete tokens


def read_config(directory: Path) -> dict:
    try:
        return json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{directory / 'config.json'} is corrupt or unreadable: {err}") from err


def _block_size(config: dict, field: str, name: str) -> int:
    size = config.get(field)
    if not isinstance(size, int) or size < 1:
        raise ModelLoadError(f"a {name} config.json needs a positive integer `{field}`, not {size!r}")
    return size


def diffusion_layout(config: dict, has_mask_token: bool, has_edit_tokens: bool = False) -> DiffusionLayout | None:
    """The layout of a diffusion checkpoint's config.json, or None for a model that is not one (a plain causal
    LM or DiffusionGemma). A config that maps to its own Python but is none of these is refused."""
    model_type = config.get("model_type")
    if model_type == "Dream" and has_edit_tokens:
        return DiffusionLayout("DreamOn", "masked_diffusion", False, True, None, "canvas_between", True)
    if model_type == "Dream":
        return DiffusionLayout("Dream", "masked_diffusion", False, True, None, "canvas_between")
    if model_type == "qwen2" and "auto_map" in config and has_mask_token:
        return DiffusionLayout("Open-dCoder", "masked_diffusion", False, True, None, "canvas_between")
    if model_type == "sdar":
        size = _block_size(config, "block_size", "SDAR")
        return DiffusionLayout("SDAR", "block_diffusion", True, False, size, "fim_text")
    if model_type == "Fast_dLLM_Qwen":
        size = _block_size(config, "bd_size", "Fast-dLLM v2")
        return DiffusionLayout("Fast-dLLM v2", "block_diffusion", False, True, size, "fim_text")
    if "auto_map" in config:
        raise ModelLoadError(
            f"a {model_type!r} checkpoint that needs its own Python (auto_map) is none of the layouts blockfill "
            "loads natively (Dream, Dream-Coder, DiffuCoder, Open-dCoder, SDAR, Fast-dLLM v2); it never runs a "
            "checkpoint's code"
        )
    return None


def load_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """Qwen2's byte-level BPE from tokenizer.json, or from vocab.json + merges.txt (Dream's own tokenizer class is
    Qwen2's under another name)."""
    has_files = (directory / "tokenizer.json").is_file() or (directory / "merges.txt").is_file()
    if not has_files:
        raise ModelLoadError(f"{directory} is a partial checkpoint: no tokenizer.json, nor vocab.json and merges.txt")
    return Qwen2Tokenizer.from_pretrained(str(directory))


def mask_token_id(config: dict, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The checkpoint's mask token: its config's `mask_token_id`, the tokenizer's `mask_token`, or a known spelling."""
    if isinstance(config.get("mask_token_id"), int):
        return config["mask_token_id"]
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id
    vocab = tokenizer.get_vocab()
    return next((vocab[s] for s in _MASK_SPELLINGS if s in vocab), None)


def edit_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int] | None:
    """(expand, delete): DreamOn's added tokens, from the checkpoint's own tokenizer; None when it lacks either."""
    vocab = tokenizer.get_vocab()
    if not all(s in vocab for s in _EDIT_SPELLINGS):
        return None
    expand, delete = (vocab[s] for s in _EDIT_SPELLINGS)
    return expand, delete


def qwen_config(config: dict, layout: DiffusionLayout) -> PretrainedConfig:
    """transformers' own Qwen2 / Qwen3 config from the checkpoint's fields (the extra ones stay as attributes)."""
    fields = {k: v for k, v in config.items() if k not in _FOREIGN_FIELDS}
    return (Qwen3Config if layout.qwen3 else Qwen2Config)(**fields)


def graph_class(layout: DiffusionLayout) -> type[PreTrainedModel]:
    return Qwen3ForCausalLM if layout.qwen3 else Qwen2ForCausalLM
