"""Token healing: the prompt's last token is taken back, and the middle must write its text again first.

The cursor often splits what the tokenizer reads as one piece: Qwen's tokenizer reads `);` and the line break
after it as one token, `);\n`, and the indentation before `return` as `   ` + ` return`. A prompt that stops at
the cursor ends in the split form (`);`, `    `), which a causal LM reading a file has never seen followed by the
rest, so its continuation suffers. Taking the last token back and allowing only tokens that agree with its text,
until that text is written again, lets the model choose the tokenization it knows (Guidance's token healing).
"""

import bisect
import functools
from collections.abc import Sequence

_AFTER_ALL = "\U0010ffff"  # sorts after every text that starts with a given one


class Vocabulary:
    """Each token's text, indexed by its start: which tokens a text that must begin with `rest` can begin with."""

    def __init__(self, texts: Sequence[str]):
        """`texts[token]`: the token's text; "" for special tokens, which healing never writes."""
        self._texts = list(texts)
        ordered = sorted((text, token) for token, text in enumerate(texts) if text)
        self._sorted = [text for text, _ in ordered]  # texts in order, for the range that starts with a text
        self._tokens = [token for _, token in ordered]
        self._by_text: dict[str, list[int]] = {}
        for text, token in ordered:
            self._by_text.setdefault(text, []).append(token)

    def text(self, token: int) -> str:
        return self._texts[token] if 0 <= token < len(self._texts) else ""

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one vocabulary per loaded model)
    def starts(self, rest: str) -> tuple[int, ...]:
        """The tokens that begin with all of `rest`, and those that are a part of its start (`   ` of `    `)."""
        low = bisect.bisect_left(self._sorted, rest)
        high = bisect.bisect_left(self._sorted, rest + _AFTER_ALL)
        shorter = [token for end in range(1, len(rest)) for token in self._by_text.get(rest[:end], ())]
        return tuple(self._tokens[low:high]) + tuple(shorter)


def take_back(ids: list[int], vocabulary: Vocabulary) -> tuple[list[int], str]:
    """`ids` without its last token, and that token's text (what the middle must write first); nothing taken back
    from an empty prompt, at a special token, or at a part of a character (its text is not its bytes)."""
    text = vocabulary.text(ids[-1]) if ids else ""
    if not text or "\ufffd" in text:
        return ids, ""
    return ids[:-1], text


def still_to_write(heal: str, written: Sequence[int], vocabulary: Vocabulary) -> str:
    """The part of `heal` that the tokens `written` so far have not written yet ("" once they have)."""
    text = ""
    for token in written:
        text += vocabulary.text(token)
        if len(text) >= len(heal):
            return ""
    return heal[len(text) :]


@functools.lru_cache(maxsize=4)
def vocabulary_of(tokenizer) -> Vocabulary:
    """A loaded model's tokenizer as a Vocabulary, built once per tokenizer (151k decodes: 3.4 s on CPU-2), so
    engines that share a loaded model share it."""
    return Vocabulary(tokenizer.batch_decode([[t] for t in range(len(tokenizer))], skip_special_tokens=True))
