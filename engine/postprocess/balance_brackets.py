"""Balance brackets and quotes relative to prefix + suffix: cut a completion at a closer that closes the wrong
kind (the model lost track), and close what a one-line completion opened when the suffix will not.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate
from engine.postprocess.brackets import PAIRS, imbalance, prefix_scan, scan


def balance_brackets(candidate: Candidate, ctx: InfillContext) -> Candidate:
    """Cut at a closer of the wrong kind, or at one with nothing open if that balances the junction; append
    closers and a quote to a one-line completion when that balances it."""
    at_cursor = prefix_scan(ctx.prefix, ctx.language)
    state = scan(candidate.text, ctx.language, at_cursor)
    text = candidate.text
    if state.mismatch is not None:
        return replace(candidate, text=text[: state.mismatch].rstrip())
    if state.orphan is not None and imbalance(ctx, text[: state.orphan]) < imbalance(ctx, text):
        return replace(candidate, text=text[: state.orphan].rstrip())
    if "\n" in text:
        return candidate
    depth = len(at_cursor.stack)
    opened = state.stack[depth:] if state.stack[:depth] == at_cursor.stack else ()
    closers = ""
    for opener in reversed(opened):
        if opener == "{":  # a brace opens a block: its closer belongs on a line of its own
            break
        closers += PAIRS[opener]
    quote = state.quote if state.quote and not at_cursor.quote else ""
    closed = text + quote + closers
    if closed != text and imbalance(ctx, closed) < imbalance(ctx, text):
        text = closed
    return replace(candidate, text=text)
