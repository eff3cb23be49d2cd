"""Drop a completion that only appends a comment to the code before the cursor on its line.

After `if (c == ')') {` a language model finds ` // closing parenthesis` as likely as any code, so reranking by
likelihood shows it: 23 of the 53 completions shown on 120 SantaCoder holes were such comments, none of them the
line the hole needed (benchmarks/RESULTS.md). Ghost text the user must dismiss is worse than none. A comment
offered at a line's start (a new comment line) is kept, ranked after code (postprocess ranking).
"""

from engine.context import InfillContext
from engine.postprocess.base import Candidate, drop, last_line
from engine.postprocess.brackets import adds_only_comments


def drop_trailing_comment(candidate: Candidate, ctx: InfillContext) -> Candidate:
    """Drop a comment-only candidate where the cursor's line already has text before the cursor."""
    if last_line(ctx.prefix).strip() and adds_only_comments(ctx, candidate.text):
        return drop(candidate)
    return candidate
