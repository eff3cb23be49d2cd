"""The public diffusion code models' layouts (Dream / Dream-Coder / DiffuCoder, Open-dCoder, SDAR, Fast-dLLM v2):
each loads natively from a directory laid out like its public checkpoint (tests/diffusion_checkpoints.py), never
importing the checkpoint's own Python, and completes through the CLI; the families' forwards match an independent
full-sequence reference; models of the Dream, SDAR and Fast-dLLM v2 layouts trained on the toy task
(tests/toy_dream.py, tests/toy_block.py) fill holes only the suffix determines, and untrained ones do not."""

import json
import sys

import pytest
import torch

from engine.cli import main
from engine.config import EngineConfig
from engine.errors import ModelLoadError
from engine.families import attention_masks
from engine.families.block_diffusion import BlockDiffusion
from engine.families.masked_diffusion import MaskedDiffusion
from engine.infill import Engine, InfillRequest
from engine.models.loading import load_model
from engine.prompt import build_prompt, collate_prompts
from tests.diffusion_checkpoints import LAYOUTS, write_checkpoint
from tests.toy_model import CANVAS, WORDS, toy_texts

FAMILY = dict.fromkeys(["dream", "dreamon", "open-dcoder"], "masked_diffusion")
FAMILY |= dict.fromkeys(["sdar", "fast-dllm-v2"], "block_diffusion")
TEXTS = ["".join(toy_texts(w)) for w in WORDS] * 5


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def layout_dir(request, tmp_path_factory):
    return request.param, write_checkpoint(tmp_path_factory.mktemp(request.param), request.param, TEXTS)


def _engine(model: str, **settings) -> Engine:
    return Engine(EngineConfig(model=model, device="cpu", threads=1, drop_syntax_errors=False, **settings))


def test_each_layout_loads_natively_and_completes_through_the_cli(layout_dir, tmp_path, capsys):
    layout, directory = layout_dir
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"task_id": str(i), "prompt": p, "suffix": s} for i, (p, _, s) in enumerate(map(toy_texts, WORDS[:3]))]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert main(["infill", "--input", str(tasks), "--output", str(out), "--model", str(directory)]) == 0
    assert [json.loads(line)["task_id"] for line in out.read_text().splitlines()] == ["0", "1", "2"]

    assert main(["models", "list", str(directory)]) == 0
    assert FAMILY[layout] in capsys.readouterr().out
    # The checkpoint's own Python is a trap that records any import: nothing imported it.
    assert not (directory / "IMPORTED").exists()
    checkpoint_modules = {name.removesuffix(".py") for name in LAYOUTS[layout]["python"]}
    assert not [name for name in sys.modules if name.split(".")[0] in checkpoint_modules]
    assert not [name for name in sys.modules if name.startswith("transformers_modules")]


def test_each_layout_reads_its_own_mask_token_and_block_size(layout_dir):
    layout, directory = layout_dir
    loaded = load_model(str(directory), device="cpu")
    assert loaded.family == FAMILY[layout]
    assert loaded.tokenizer.convert_ids_to_tokens(loaded.mask_token_id) == LAYOUTS[layout]["mask"]
    if loaded.family == "block_diffusion":
        assert loaded.diffusion.block_size == 4
        assert loaded.diffusion.shift == (layout == "fast-dllm-v2")  # SDAR predicts in place


def test_a_foreign_or_broken_checkpoint_is_one_line_error(tmp_path):
    directory = write_checkpoint(tmp_path / "sdar", "sdar", TEXTS)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | {"block_size": 0}))
    with pytest.raises(ModelLoadError, match="positive integer `block_size`"):
        load_model(str(directory), device="cpu")
    (directory / "config.json").write_text(json.dumps(config | {"model_type": "llada", "architectures": ["LLaDA"]}))
    with pytest.raises(ModelLoadError, match="never runs a checkpoint's code") as raised:
        load_model(str(directory), device="cpu")
    assert "\n" not in str(raised.value)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="partial checkpoint"):
        load_model(str(directory), device="cpu")


def test_open_dcoder_is_told_from_a_qwen2_lm_by_its_mask_token_even_when_the_tokenizer_does_not_name_it(tmp_path):
    directory = write_checkpoint(tmp_path / "odc", "open-dcoder", TEXTS)
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    del settings["mask_token"]
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    loaded = load_model(str(directory), device="cpu")
    assert loaded.family == "masked_diffusion" and loaded.diffusion.name == "Open-dCoder"
    assert loaded.tokenizer.convert_ids_to_tokens(loaded.mask_token_id) == "<M>"


def test_dreamon_is_dream_with_expand_and_delete_read_from_its_own_tokenizer(layout_dir):
    layout, directory = layout_dir
    loaded = load_model(str(directory), device="cpu")
    if layout != "dreamon":
        assert loaded.edit_tokens is None
        return
    assert loaded.diffusion.name == "DreamOn" and loaded.diffusion.variable_length
    assert loaded.tokenizer.convert_ids_to_tokens(list(loaded.edit_tokens)) == ["<|expand|>", "<|delete|>"]


def _bidirectional_logits(model, ids: list[int], positions: list[int]) -> torch.Tensor:
    """The reference: one forward of the whole sequence in file order under full attention [T, V]."""
    allowed = torch.ones(1, len(ids), len(ids), dtype=torch.bool)
    return model(
        input_ids=torch.tensor([ids]), position_ids=torch.tensor([positions]), attention_mask=attention_masks(allowed)
    ).logits[0]


@torch.inference_mode()
def test_masked_canvas_logits_are_the_shifted_logits_of_prefix_canvas_suffix_in_file_order(layout_dir):
    layout, directory = layout_dir
    if FAMILY[layout] != "masked_diffusion":
        pytest.skip("masked diffusion only")
    loaded = load_model(str(directory), device="cpu")
    prefix, suffix, mask = [5, 6, 7], [8, 9], loaded.mask_token_id
    canvas = [mask, 11, mask, mask]
    batch = collate_prompts([build_prompt(prefix, suffix, 4, "canvas_between", loaded.special)], 4, loaded.special.pad)
    exact = MaskedDiffusion(loaded.model, mask, approximate_cache=False)
    got = exact.canvas_logits(exact.prefill(batch), torch.tensor([canvas]), batch.canvas_position_ids, None)[0]
    reference = _bidirectional_logits(loaded.model, prefix + canvas + suffix, list(range(9)))
    torch.testing.assert_close(got, reference[2:6])  # canvas position i is predicted at i - 1
    # Approximate caching computes the context once with the canvas all masks: exact at the first step.
    cached = MaskedDiffusion(loaded.model, mask, approximate_cache=True)
    masks = torch.full((1, 4), mask)
    first = cached.canvas_logits(cached.prefill(batch), masks, batch.canvas_position_ids, None)[0]
    torch.testing.assert_close(
        first, exact.canvas_logits(exact.prefill(batch), masks, batch.canvas_position_ids, None)[0]
    )


@torch.inference_mode()
def test_block_logits_match_a_full_forward_under_the_block_causal_mask(layout_dir):
    layout, directory = layout_dir
    if FAMILY[layout] != "block_diffusion":
        pytest.skip("block diffusion only")
    loaded = load_model(str(directory), device="cpu")
    family = BlockDiffusion(loaded.model, loaded.mask_token_id, 4, loaded.diffusion.shift)
    mask, shift = loaded.mask_token_id, int(loaded.diffusion.shift)
    batch = collate_prompts([build_prompt([5, 6, 7, 8, 9, 10], [], 0, "fim_text", loaded.special)], 7, 0)
    ids = batch.input_ids[0].tolist()  # 9 tokens: two whole blocks prefilled, one in the first canvas block
    assert len(ids) == 9 and family.segments(batch) == [3, 4]
    state = family.prefill(batch)
    first, second = batch.canvas_position_ids[:, :3], batch.canvas_position_ids[:, 3:]
    got_first = family.canvas_logits(state, torch.full((1, 3), mask), first, None)[0]
    settled = torch.tensor([[20, 21, 22]])
    family.commit(state, settled, first)
    got_second = family.canvas_logits(state, torch.full((1, 4), mask), second, None)[0]

    def reference(sequence: list[int]) -> torch.Tensor:
        block = torch.arange(len(sequence)) // 4
        allowed = (block[:, None] >= block[None, :])[None]  # SDAR's and Fast-dLLM v2's block-causal mask
        return loaded.model(input_ids=torch.tensor([sequence]), attention_mask=attention_masks(allowed)).logits[0]

    want_first = reference(ids + [mask] * 3)[9 - shift : 12 - shift]
    want_second = reference(ids + [20, 21, 22] + [mask] * 4)[12 - shift : 16 - shift]
    torch.testing.assert_close(got_first, want_first, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_second, want_second, atol=1e-4, rtol=1e-4)


def _toy_score(model: str, **settings) -> tuple[int, list[str]]:
    """How many of the toy task's 12 holes the engine fills with their word, and what it wrote."""
    requests = [InfillRequest(*toy_texts(w)[::2], "python", canvas_tokens=CANVAS, force=True) for w in WORDS]
    got = [c.raw_text.strip() for c in _engine(model, **settings).complete(requests)]
    return sum(g == w for g, w in zip(got, WORDS, strict=True)), got


def test_a_trained_dream_layout_model_fills_the_middle_from_the_suffix(toy_dream_checkpoint):
    for settings in ({}, {"approximate_cache": False}, {"sampler": "confidence"}, {"sampler": "margin"}):
        score, got = _toy_score(str(toy_dream_checkpoint), **settings)
        assert score >= 10, (settings, got)


def test_a_trained_block_diffusion_model_fills_the_middle_from_the_suffix(toy_block_checkpoint):
    for settings in ({}, {"sampler": "confidence"}, {"sampler": "margin"}):
        score, got = _toy_score(str(toy_block_checkpoint), **settings)
        assert score >= 10, (toy_block_checkpoint.name, settings, got)


def test_an_untrained_model_of_each_layout_fails_the_same_check(layout_dir):
    layout, directory = layout_dir
    score, got = _toy_score(str(directory))
    assert score <= 1, (layout, got)
