"""DreamOn's variable-length canvas in the one loop (engine.denoise): a settled expand becomes two masks, a settled
delete is removed, the suffix's positions follow the canvas's end, and the canvas never outgrows its budget."""

import pytest
import torch

from engine.denoise import DenoiseSettings, denoise, edit_canvas
from engine.families import CanvasEdits
from engine.families.masked_diffusion import MaskedDiffusion
from engine.models.loading import load_model
from engine.prompt import PromptBatch, build_prompt, collate_prompts
from tests.diffusion_checkpoints import write_checkpoint
from tests.test_diffusion_families import TEXTS, _bidirectional_logits

MASK, EXPAND, DELETE, END = 0, 1, 2, 3
WORD = [10, 11, 12, 13, 14]


def test_expand_doubles_a_settled_mask_and_delete_removes_its_position():
    edits = CanvasEdits(EXPAND, DELETE, max_growth=8, end=END)
    canvas = torch.tensor([[10, EXPAND, MASK, DELETE, 11, EXPAND]])
    noise = torch.tensor([[False, False, True, False, False, False]])
    tokens, is_noise, added = edit_canvas(canvas, noise, edits, MASK, room=8)
    assert tokens.tolist() == [[10, MASK, MASK, MASK, 11, MASK, MASK]] and added == 2
    assert is_noise.tolist() == [[False, True, True, True, False, True, True]]
    # Past the budget an expand is only re-masked: the canvas keeps its length.
    tokens, is_noise, added = edit_canvas(canvas, noise, edits, MASK, room=1)
    assert tokens.tolist() == [[10, MASK, MASK, MASK, 11, MASK]] and added == 1
    assert is_noise[0].tolist() == [False, True, True, True, False, True]


class ScriptedFamily:
    """Predicts one edit a step until the canvas has WORD's length, then WORD; records every step's positions."""

    vocab_size, mask_token_id, one_row_at_a_time = 16, MASK, True

    def __init__(self, max_growth: int):
        self.edits = CanvasEdits(EXPAND, DELETE, max_growth, END)
        self.seen: list[list[int]] = []  # canvas positions, a step each
        self.suffix_at: list[int] = []  # where resize moved the suffix

    def prefill(self, batch, cache=None):
        return None

    def segments(self, batch):
        return [batch.canvas_position_ids.shape[1]]

    def canvas_logits(self, state, canvas, positions, previous):
        self.seen.append(positions[0].tolist())
        size = canvas.shape[1]
        logits = torch.zeros(1, size, self.vocab_size)
        for i in range(size):
            logits[0, i, WORD[i] if i < len(WORD) else DELETE] = 2.0  # unsure: p < 0.9
        edit = (0, EXPAND) if size < len(WORD) else (size - 1, DELETE) if size > len(WORD) else None
        if edit is not None:
            logits[0, edit[0], edit[1]] = 20.0  # the surest position: the floor settles it first
        return logits

    def select(self, state, keep):
        return state

    def resize(self, state, end):
        self.suffix_at.append(int(end))

    def commit(self, state, tokens, positions):
        """One segment."""


def _batch(canvas: int, start: int = 7) -> PromptBatch:
    ids = torch.arange(start)[None]  # [1, L] any prompt
    return PromptBatch(ids, torch.ones_like(ids, dtype=torch.bool), ids, torch.arange(start, start + canvas)[None])


SETTINGS = DenoiseSettings(max_steps=12, sampler="confidence")


@pytest.mark.parametrize("canvas", [2, 8])
def test_the_canvas_grows_or_shrinks_to_the_middle_and_the_suffix_follows_its_end(canvas):
    family = ScriptedFamily(max_growth=6)
    result = denoise(family, _batch(canvas), SETTINGS, [0])
    assert result.tokens.tolist() == [WORD + [END] * (canvas + 6 - len(WORD))]
    sizes = [len(p) for p in family.seen]
    assert sizes[: abs(canvas - len(WORD)) + 1] == list(range(canvas, len(WORD), 1 if canvas < len(WORD) else -1)) + [5]
    assert all(p == list(range(7, 7 + len(p))) for p in family.seen)  # contiguous from the canvas's start
    assert family.suffix_at == [7 + s for s in sizes[1 : abs(canvas - len(WORD)) + 1]]


def test_expansion_stops_at_the_budget_and_at_the_last_step():
    family = ScriptedFamily(max_growth=2)
    result = denoise(family, _batch(2), SETTINGS, [0])
    assert max(len(p) for p in family.seen) == 4  # 2 + max_growth, then no expand can settle
    assert result.tokens.shape == (1, 4) and EXPAND not in result.tokens.tolist()[0]
    assert result.tokens.tolist() == [WORD[:4]]


@torch.inference_mode()
def test_a_resized_dreamon_canvas_reads_the_suffix_right_after_it(tmp_path):
    loaded = load_model(str(write_checkpoint(tmp_path / "dreamon", "dreamon", TEXTS)), device="cpu")
    mask = loaded.mask_token_id
    prefix, suffix = [5, 6, 7], [8, 9]
    batch = collate_prompts([build_prompt(prefix, suffix, 4, "canvas_between", loaded.special)], 4, loaded.special.pad)
    for approximate in (False, True):
        family = MaskedDiffusion(loaded.model, mask, approximate, CanvasEdits(*loaded.edit_tokens, 8, 0))
        state = family.prefill(batch)
        canvas = [mask, 11, mask, mask, mask, 12]  # grown from 4 to 6 positions
        family.resize(state, torch.tensor([[3 + len(canvas)]]))
        positions = torch.arange(3, 3 + len(canvas))[None]
        got = family.canvas_logits(state, torch.tensor([canvas]), positions, None)[0]
        reference = _bidirectional_logits(loaded.model, prefix + canvas + suffix, list(range(11)))
        torch.testing.assert_close(got, reference[2:8])
