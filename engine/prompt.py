"""Fill-in-the-middle prompts: which token ids the encoder sees, at which positions, and where the canvas sits.

One function serves training and inference so the two can never drift apart. The layout is a per-model choice
recorded in the checkpoint's config (`blockfill_fim_layout`):

- `suffix_after_canvas`: `<bos> prefix` at positions 0..p-1, then `<fim_suffix> suffix` at positions *after* the
  canvas (p+C, p+C+1, ...). The canvas itself is decoded at positions p..p+C-1, so under RoPE the model sees the
  hole exactly where it is in the file. Learned far faster than FIM text in a small from-scratch comparison.
- `canvas_between`: prefix, canvas, suffix in one sequence at their file positions, read with full attention: a
  masked diffusion model (Dream, Open-dCoder) trained on plain text. The prefix's last token is moved to the end
  of the ids (a bidirectional model reads positions, not order), so every left-padded row ends with the token whose
  shifted logits predict the canvas's first position.
- `fim_text`: PSM FIM text with the tokenizer's FIM tokens, positions contiguous, canvas right after
  `<fim_middle>`: what a checkpoint trained on FIM text expects. A chat checkpoint whose tokenizer has no FIM
  tokens gets an instruction instead, framed by its own chat template, and answers on the canvas.
"""

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from engine.errors import ModelLoadError

# Prompt tokens a prefill forward reads, every family: a cancel waits for one (CPU-2: 1,024 tokens in 11 s for
# the 0.5B base, 10 s unchunked).
PREFILL_CHUNK = 128

# Spellings of the FIM special tokens across tokenizers, ours first.
_FIM_NAMES = {
    "fim_prefix": ("<fim_prefix>", "<|fim_prefix|>"),
    "fim_middle": ("<fim_middle>", "<|fim_middle|>"),
    "fim_suffix": ("<fim_suffix>", "<|fim_suffix|>"),
}
# Tokens after which a FIM middle is over, besides the tokenizer's EOS: a causal code model ends its middle with its
# own end-of-text or a FIM/file separator (Qwen2.5-Coder writes `<|endoftext|>`, never its chat EOS `<|im_end|>`);
# an instruction-tuned Gemma ends its answer with `<end_of_turn>`.
_MIDDLE_END_NAMES = (
    "<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>", "<fim_pad>", "<file_sep>",
    "<|end|>", "<eos>", "<end_of_turn>",
)  # fmt: skip
_HOLE = "<HOLE>"
_INSTRUCTION = f"Fill in the code at {_HOLE}. Reply with only the missing code, no explanation and no code fences.\n\n"


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the tokens the prompt and the canvas are built from."""

    pad: int
    eos: int
    bos: int | None
    fim_prefix: int | None
    fim_middle: int | None
    fim_suffix: int | None
    # For chat checkpoints without FIM tokens: token ids before the prefix, between prefix and suffix, after it.
    chat_frame: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
    middle_ends: frozenset[int] = frozenset()  # tokens that also end a middle (with eos and pad)

    @property
    def stop_ids(self) -> frozenset[int]:
        """Every token at which a middle ends: EOS, padding and the model's own FIM end tokens."""
        return self.middle_ends | {self.eos, self.pad}

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> "SpecialTokens":
        vocab = tokenizer.get_vocab()
        fim = {key: next((vocab[n] for n in names if n in vocab), None) for key, names in _FIM_NAMES.items()}
        if tokenizer.eos_token_id is None:
            raise ModelLoadError("the tokenizer has no end-of-sequence token, so a middle cannot end")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        frame = chat_frame(tokenizer) if None in fim.values() and tokenizer.chat_template else None
        ends = frozenset(vocab[name] for name in _MIDDLE_END_NAMES if name in vocab)
        return cls(
            pad=pad, eos=tokenizer.eos_token_id, bos=tokenizer.bos_token_id, **fim, chat_frame=frame, middle_ends=ends
        )


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """A file's text as token ids, never special tokens. A tokenizer reads the text of its special tokens as those
    tokens by default, so a file that mentions `<|fim_suffix|>` or `<|endoftext|>` (blockfill's own source does)
    would put a second FIM marker or an end of text into the prompt and the training rows; here it stays text."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def chat_frame(tokenizer: PreTrainedTokenizerBase) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Render the chat template once around two sentinels and tokenize the three pieces between them."""
    prefix_mark, suffix_mark = "\x00PREFIX\x00", "\x00SUFFIX\x00"
    message = {"role": "user", "content": f"{_INSTRUCTION}{prefix_mark}{_HOLE}{suffix_mark}"}
    rendered = tokenizer.apply_chat_template([message], tokenize=False, add_generation_prompt=True)
    head, rest = rendered.split(prefix_mark)
    middle, tail = rest.split(suffix_mark)
    encode = lambda text: tuple(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return encode(head), encode(middle), encode(tail)


@dataclass(frozen=True)
class Prompt:
    """Encoder input for one request. Lists, not tensors: batching pads them."""

    input_ids: list[int]
    position_ids: list[int]
    canvas_start: int  # RoPE position of the canvas's first token


def has_fim_tokens(special: SpecialTokens) -> bool:
    return None not in (special.fim_prefix, special.fim_middle, special.fim_suffix)


def plain_file_head(prefix_ids: list[int], special: SpecialTokens) -> list[int]:
    """The file before a point as a causal model reads it plainly: where it has FIM tokens, the FIM prompt's own
    start (BOS, `<|fim_prefix|>`, the prefix), so that one prefill serves the FIM prompt and the plain file
    (engine.infill); the prefix alone where it has none."""
    if not has_fim_tokens(special):
        return prefix_ids
    return ([special.bos] if special.bos is not None else []) + [special.fim_prefix, *prefix_ids]


def build_prompt(
    prefix_ids: list[int], suffix_ids: list[int], canvas_length: int, layout: str, special: SpecialTokens
) -> Prompt:
    """Lay out already-tokenized prefix and suffix for a canvas of `canvas_length` tokens."""
    head = [special.bos] if special.bos is not None else []
    if layout == "suffix_after_canvas":
        if special.fim_suffix is None:
            raise ModelLoadError("layout 'suffix_after_canvas' needs a <fim_suffix> token in the tokenizer")
        before = head + prefix_ids
        after = [special.fim_suffix] + suffix_ids
        canvas_start = len(before)
        positions = list(range(canvas_start)) + list(
            range(canvas_start + canvas_length, canvas_start + canvas_length + len(after))
        )
        return Prompt(before + after, positions, canvas_start)
    if layout == "canvas_between":
        before = head + prefix_ids if head or prefix_ids else [special.eos]  # something must precede the canvas
        canvas_start = len(before)
        after = range(canvas_start + canvas_length, canvas_start + canvas_length + len(suffix_ids))
        positions = [*range(canvas_start - 1), *after, canvas_start - 1]
        return Prompt(before[:-1] + suffix_ids + before[-1:], positions, canvas_start)
    if layout == "fim_text":
        if has_fim_tokens(special):
            ids = [*plain_file_head(prefix_ids, special), special.fim_suffix, *suffix_ids, special.fim_middle]
        elif special.chat_frame is not None:
            before, between, after = special.chat_frame
            ids = [*before, *prefix_ids, *between, *suffix_ids, *after]
        else:
            raise ModelLoadError("layout 'fim_text' needs FIM tokens or a chat template in the tokenizer")
        return Prompt(ids, list(range(len(ids))), len(ids))
    raise ModelLoadError(f"unknown FIM layout {layout!r} in the model's config")


def canvas_target(middle_ids: list[int], canvas_length: int, special: SpecialTokens) -> list[int]:
    """What a perfect denoiser writes on the canvas: the middle, one EOS, then padding to the canvas's end."""
    if len(middle_ids) >= canvas_length:
        raise ValueError(f"a middle of {len(middle_ids)} tokens does not fit a {canvas_length}-token canvas")
    return middle_ids + [special.eos] + [special.pad] * (canvas_length - len(middle_ids) - 1)


@dataclass(frozen=True)
class PromptBatch:
    """Left-padded prompts as tensors, ready for the encoder, plus the canvas positions for the decoder."""

    input_ids: torch.Tensor  # [B, L] long
    attention_mask: torch.Tensor  # [B, L] bool, False on padding
    position_ids: torch.Tensor  # [B, L] long
    canvas_position_ids: torch.Tensor  # [B, C] long

    def row(self, index: int) -> "PromptBatch":
        """One row, without its left padding (families that decode a row at a time)."""
        start = int((~self.attention_mask[index]).sum())
        return PromptBatch(
            input_ids=self.input_ids[index : index + 1, start:],
            attention_mask=self.attention_mask[index : index + 1, start:],
            position_ids=self.position_ids[index : index + 1, start:],
            canvas_position_ids=self.canvas_position_ids[index : index + 1],
        )


def collate_prompts(prompts: list[Prompt], canvas_length: int, pad_id: int, device: str = "cpu") -> PromptBatch:
    """Left-pad so every row's last prompt token is at the same index (padding is masked, so it changes nothing)."""
    width = max(len(p.input_ids) for p in prompts)
    ids, mask, pos = [], [], []
    for p in prompts:
        gap = width - len(p.input_ids)
        ids.append([pad_id] * gap + p.input_ids)
        mask.append([False] * gap + [True] * len(p.input_ids))
        pos.append([0] * gap + p.position_ids)
    starts = torch.tensor([p.canvas_start for p in prompts], device=device)
    canvas_pos = starts[:, None] + torch.arange(canvas_length, device=device)[None, :]
    return PromptBatch(
        input_ids=torch.tensor(ids, device=device),
        attention_mask=torch.tensor(mask, device=device),
        position_ids=torch.tensor(pos, device=device),
        canvas_position_ids=canvas_pos,
    )
