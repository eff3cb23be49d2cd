"""The denoising loop must condition on the suffix: a trained toy model fills a hole only the suffix explains."""

from engine.config import EngineConfig
from engine.infill import Engine, InfillRequest
from tests.toy_model import CANVAS, WORDS, toy_texts


def test_toy_model_fills_the_middle_from_the_suffix(toy_checkpoint):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu"))
    requests = [InfillRequest(*toy_texts(w)[::2], canvas_tokens=CANVAS, force=True) for w in WORDS]
    completions = engine.complete(requests)
    got = [c.raw_text for c in completions]
    correct = sum(text == word for text, word in zip(got, WORDS, strict=True))
    # Ignoring the suffix gives ~1/12; we ask for nearly all of them.
    assert correct >= len(WORDS) - 1, list(zip(WORDS, got, strict=True))


def test_same_seed_same_completion_regardless_of_batch(toy_checkpoint):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu"))
    request = InfillRequest(*toy_texts("golf")[::2], canvas_tokens=CANVAS, force=True)
    alone = engine.complete([request], seeds=[7])[0]
    batched = engine.complete([InfillRequest(*toy_texts("kilo")[::2], canvas_tokens=CANVAS), request], seeds=[1, 7])[1]
    assert alone.raw_text == batched.raw_text
    assert alone.steps == batched.steps


def test_an_untrained_model_fails_the_same_check(toy_checkpoint, tmp_path):
    """The check above can fail: the same architecture with random weights gets (almost) none right."""
    import shutil

    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(toy_checkpoint / name, tmp_path / name)
    DiffusionGemmaForBlockDiffusion(DiffusionGemmaConfig.from_pretrained(str(toy_checkpoint))).save_pretrained(
        str(tmp_path)
    )
    engine = Engine(EngineConfig(model=str(tmp_path), device="cpu"))
    completions = engine.complete([InfillRequest(*toy_texts(w)[::2], canvas_tokens=CANVAS, force=True) for w in WORDS])
    assert sum(c.raw_text == w for c, w in zip(completions, WORDS, strict=True)) <= 2
