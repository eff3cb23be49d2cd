"""Postprocessing: the order of the filters, then ranking. Each filter is in its own file; see base.py."""

import functools
from collections.abc import Callable

from engine.context import InfillContext
from engine.postprocess.balance_brackets import balance_brackets
from engine.postprocess.base import Candidate, Filter, PostprocessOptions
from engine.postprocess.brackets import adds_only_comments, imbalance
from engine.postprocess.check_syntax import check_syntax
from engine.postprocess.drop_blank import drop_blank
from engine.postprocess.drop_repetitive import drop_repetitive
from engine.postprocess.drop_suffix_duplicate import drop_suffix_duplicate
from engine.postprocess.drop_trailing_comment import drop_trailing_comment
from engine.postprocess.end_with_line_break import end_with_line_break
from engine.postprocess.limit_scope import limit_scope
from engine.postprocess.normalize_indentation import normalize_indentation

__all__ = ["Candidate", "Filter", "PostprocessOptions", "postprocess", "standing_in"]


def postprocess(
    candidates: list[Candidate],
    ctx: InfillContext,
    options: PostprocessOptions = PostprocessOptions(),  # noqa: B008 (frozen)
) -> list[Candidate]:
    """Filter each candidate, then rank: adds no syntax error, then joins the suffix cleanly, then writes code (not
    only comments), then score."""
    filters: list[Filter] = [
        drop_blank,
        drop_trailing_comment,
        drop_repetitive,
        functools.partial(limit_scope, past_dedents=options.past_dedents),
        drop_suffix_duplicate,
        balance_brackets,
        normalize_indentation(options.tab_size, options.insert_spaces),
        drop_blank,
        end_with_line_break,
        check_syntax(cut_back=options.drop_syntax_errors),  # shown as written when broken ones are wanted
    ]
    survivors = []
    for candidate in candidates:
        for apply in filters:
            candidate = apply(candidate, ctx)
            if not candidate.text:
                break
        else:
            if not (options.drop_syntax_errors and (candidate.syntax_errors_added or 0) > 0):
                survivors.append(candidate)
    standing = standing_in(ctx)
    survivors.sort(key=lambda c: (*standing(c), -c.score))
    unique: dict[str, Candidate] = {}
    for candidate in survivors:
        unique.setdefault(candidate.text, candidate)
    return list(unique.values())


def standing_in(ctx: InfillContext) -> Callable[[Candidate], tuple[bool, bool, bool]]:
    """How a filtered candidate ranks before its score is read, lower first: whether it adds a syntax error, leaves
    the brackets worse than an empty middle would, writes only comments. The reranker reads it too: only the
    candidates of the best standing need a score (engine.infill)."""
    baseline = imbalance(ctx, "")

    def standing(candidate: Candidate) -> tuple[bool, bool, bool]:
        return (
            (candidate.syntax_errors_added or 0) > 0,
            imbalance(ctx, candidate.text) > baseline,
            adds_only_comments(ctx, candidate.text),
        )

    return standing
