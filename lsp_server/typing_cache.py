"""Typing through a shown completion: answer from memory while the user types what it proposed.

Copilot's and Tabby's habit: if the characters typed since a completion was made are the start of it, and the
rest of the document is unchanged (same prefix before, same suffix after), the remainder is the answer; no
model call, well under a millisecond. The comparisons are whole-string `startswith`/`endswith`, which cost
microseconds even on a large file and make a stale hit impossible.
"""

from dataclasses import dataclass


def typed_since(text: str, prefix: str, suffix: str) -> str | None:
    """What was inserted between `prefix` and `suffix` to give `text`, or None if anything else changed."""
    if len(text) < len(prefix) + len(suffix) or not text.startswith(prefix) or not text.endswith(suffix):
        return None
    return text[len(prefix) : len(text) - len(suffix)]


@dataclass(frozen=True)
class _Shown:
    prefix: str  # document text before the cursor when the completion was made
    suffix: str  # and after it
    texts: tuple[str, ...]  # the items shown, best first
    alternatives: bool  # made for an Invoked request (several items), so good enough for another one


class TypingCache:
    """The last completion shown in each document."""

    def __init__(self) -> None:
        self._shown: dict[str, _Shown] = {}

    def remember(self, uri: str, prefix: str, suffix: str, texts: list[str], alternatives: bool) -> None:
        if texts:
            self._shown[uri] = _Shown(prefix, suffix, tuple(texts), alternatives)

    def lookup(self, uri: str, text: str, offset: int, alternatives: bool) -> list[str] | None:
        """The rest of each shown item the user has typed into so far, or None (ask the model)."""
        shown = self._shown.get(uri)
        if shown is None or (alternatives and not shown.alternatives) or len(text) - offset != len(shown.suffix):
            return None
        typed = typed_since(text, shown.prefix, shown.suffix)
        if typed is None:
            return None
        rests = [t[len(typed) :] for t in shown.texts if t.startswith(typed) and len(t) > len(typed)]
        return rests or None

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)
