"""Drop completions of nothing but whitespace: invisible ghost text still costs a keystroke to dismiss."""

from engine.context import InfillContext
from engine.postprocess.base import Candidate, drop


def drop_blank(candidate: Candidate, ctx: InfillContext) -> Candidate:
    """Drop a candidate whose text is empty or whitespace only."""
    return candidate if candidate.text.strip() else drop(candidate)
