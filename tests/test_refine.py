"""After a keystroke the engine repairs its previous suggestion in a step or two instead of starting from noise."""

from engine.config import EngineConfig
from engine.infill import Engine, InfillRequest
from tests.toy_model import CANVAS, toy_texts


def _request(prefix: str, suffix: str) -> InfillRequest:
    return InfillRequest(prefix, suffix, "python", canvas_tokens=CANVAS, force=True)


def test_a_repeated_request_refines_and_keeps_a_right_suggestion(toy_checkpoint):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu", refine_steps=2))
    prefix, word, suffix = toy_texts("foxtrot")
    first = engine.complete([_request(prefix, suffix)])[0]
    assert (first.raw_text, first.refined) == (word, False)
    again = engine.complete([_request(prefix, suffix)])[0]
    assert again.refined and again.steps <= 2
    assert again.raw_text == word


def test_typing_refines_only_while_the_cursor_moves_forward_in_the_same_place(toy_checkpoint):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu", refine_steps=2))
    prefix, _, suffix = toy_texts("kilo")
    engine.complete([_request(prefix, suffix)])
    typed = engine.complete([_request(prefix + "k", suffix)])[0]
    assert typed.refined and typed.steps <= 2
    elsewhere = engine.complete([_request(prefix, suffix + "x")])[0]  # the suffix changed: start from noise
    assert not elsewhere.refined
    deleted = engine.complete([_request(prefix[:-1], suffix + "x")])[0]  # a backspace: start from noise
    assert not deleted.refined
    engine.forget_previous()
    assert not engine.complete([_request(prefix, suffix)])[0].refined


def test_refinement_can_be_turned_off(toy_checkpoint):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu", refine_steps=0))
    prefix, _, suffix = toy_texts("lima")
    engine.complete([_request(prefix, suffix)])
    assert not engine.complete([_request(prefix + "l", suffix)])[0].refined


def test_a_suggestion_seeds_a_canvas_of_another_size(toy_checkpoint):
    """A block suggestion made at a line's start seeds the line-mode canvas once the user types on that line."""
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu", refine_steps=2))
    prefix, _, suffix = toy_texts("india")
    engine.complete([_request(prefix, suffix)])
    wider = engine.complete([InfillRequest(prefix + "i", suffix, "python", canvas_tokens=CANVAS + 4, force=True)])[0]
    assert wider.refined and wider.steps <= 2
