"""build_context and ParsedDocument on real parses. Token counts use the stand-in in markers.py (~3 bytes a
token), not the model's tokenizer: the cuts only need a monotone counter."""

import random

import pytest

from engine.context import ContextBudget, ParsedDocument, build_context, indent_unit
from engine.languages import parser_for
from tests.markers import count_tokens, marked_context, parse_marked

MODES = [
    # Block: an empty body, the line after an opener, an empty line inside a block or at the top level.
    ("python\ndef f(x):\n    ║\n", "block", "after a block-opening `:`"),
    ("python\ndef f(x):║\n", "block", "right after a block-opening `:`"),
    ("python\nclass A:\n    def f(self):  # why\n        ║\n", "block", "`:`"),
    ("python\nfor x in y:\n    a(x)\n    ║\n    b(x)\n", "block", "inside a block"),
    ("python\nimport os\n\n║\n", "block", "top level"),
    ("javascript\nfunction f() {\n  ║\n}\n", "block", "`{`"),
    ("javascript\nif (x) {║}\n", "block", "`{`"),
    ("typescript\nclass A {\n  f(): void {\n    g();\n    ║\n  }\n}\n", "block", "statement block"),
    ("typescriptreact\nfunction App() {\n  ║\n}\n", "block", "`{`"),
    ("go\npackage main\n\nfunc f() {\n\t║\n}\n", "block", "`{`"),
    ("rust\nfn main() {\n    let x = 1;\n    ║\n}\n", "block", "inside a block"),
    ("java\nclass A {\n  void f() {\n    ║\n  }\n}\n", "block", "`{`"),
    ("c\nint main(void) {\n    ║\n}\n", "block", "`{`"),
    ("cpp\nnamespace n {\nint f() {\n  return 1;\n}\n║\n}\n", "block", "declaration list"),
    # Block: a line's start (or its indentation) before code: whole lines go in before that code.
    ("python\ndef f(x):\n║    return x\n", "block", "insert whole lines"),
    ("python\ndef f(x):\n    ║return x\n", "block", "insert whole lines"),
    ("javascript\nfunction f() {\n  ║return 1;\n}\n", "block", "insert whole lines"),
    # Line: mid-line, the end of a non-empty line, the end of a string's text.
    ("python\nx = foo(a║, b)\n", "line", "mid-line"),
    ("python\nprint(║)\n", "line", "end of a non-empty line"),
    ("python\nreturn x +║\n", "line", "end of a non-empty line"),
    ("python\nopen('data/║')\n", "line", "end of a string"),
    ("javascript\nconst s = `a${b║}c`;\n", "line", "mid-line"),
    ('go\npackage main\nvar s = "abc║"\n', "line", "end of a string"),
    ("rust\nfn f() { let v = vec![1, ║]; }\n", "line", "end of a non-empty line"),
    ("java\nclass A { int x = f(║); }\n", "line", "end of a non-empty line"),  # only closers follow
    ("java\nclass A { int x = f(║a); }\n", "line", "mid-line"),
    ("c\nint x = sizeof(║);\n", "line", "end of a non-empty line"),
    # Skip: inside comments and in the middle of string literals.
    ("python\nx = 1  # a comm║ent\n", "skip", "comment"),
    ("python\nx = 1  # a comment║\n", "skip", "comment"),
    ("python\ns = 'ab║cd'\n", "skip", "string literal"),
    ('python\ndef f():\n    """Doc║ string."""\n', "skip", "string literal"),
    ("javascript\n/* block ║ comment */\n", "skip", "comment"),
    ("typescript\nconst s = `tem║plate`;\n", "skip", "string literal"),
    ("go\npackage main\n// doc║\n", "skip", "comment"),
    ("rust\n/// doc ║comment\nfn f() {}\n", "skip", "comment"),
    ('java\nclass A { String s = "he║llo"; }\n', "skip", "string literal"),
    ("c\n// todo║\n", "skip", "comment"),
    ('cpp\nauto s = R"(raw ║text)";\n', "skip", "string literal"),
    # No grammar: line mode whatever the text.
    ("plaintext\ndef f():\n    ║\n", "line", "no grammar"),
]


@pytest.mark.parametrize(
    ("source", "mode", "reason"), MODES, ids=[m[0].split("\n")[0] + f"-{i}" for i, m in enumerate(MODES)]
)
def test_mode_follows_the_syntax_node_at_the_cursor(source: str, mode: str, reason: str) -> None:
    _, ctx = marked_context(source)
    assert (ctx.mode, reason in ctx.reason) == (mode, True), ctx.reason
    budget = ContextBudget()
    assert ctx.canvas_tokens == {"line": budget.line_canvas, "block": budget.block_canvas, "skip": 0}[mode]


@pytest.mark.parametrize(
    ("source", "inserts"),
    [
        ("python\ndef f(x):\n║    return x\n", True),
        ("python\ndef f(x):\n    ║return x\n", True),
        ("python\ndef f(x):\n    ║\n    return x\n", False),  # an empty line: nothing to push down
        ("python\nx = foo(a║, b)\n", False),
        ("javascript\nfunction f() {\n  ║}\n", False),  # only a closer after the cursor
        ("python\nx = 1  # a comm║ent\n", False),
    ],
)
def test_a_hole_before_code_on_its_line_inserts_lines(source: str, inserts: bool) -> None:
    assert marked_context(source)[1].inserts_lines is inserts


def _python_file(functions: int, body_lines: int = 0) -> str:
    """Imports, then a class of methods, each with a docstring: a file big enough to need cutting."""
    parts = ["import os\nfrom typing import Any\n\n\nclass Store:\n"]
    for i in range(functions):
        parts.append(
            f"    def method_{i}(self, key: str, default: Any = None) -> Any:\n"
            f'        """Look up key {i}.\n\n'
            '        Several lines of docstring, so a cut could land inside.\n        """\n'
            f"        value = self.data.get(key + '{i}', default)\n"
            + "".join(f"        value += {j}\n" for j in range(body_lines))
            + f"        if value is None:\n            return default\n        return value * {i}\n\n"
        )
    return "".join(parts)


def test_prefix_keeps_imports_and_enclosing_signatures_when_cut() -> None:
    text = _python_file(60, body_lines=40)
    offset = text.index("return value * 40") + len("return value * 40")
    ctx, _ = build_context(text, offset, "python", count_tokens, ContextBudget(max_prefix_tokens=200))
    header, body = ctx.prefix[: -len(text[ctx.prefix_start : offset])], text[ctx.prefix_start : offset]
    assert header == (
        "import os\nfrom typing import Any\nclass Store:\n"
        "    def method_40(self, key: str, default: Any = None) -> Any:\n"
    )
    assert ctx.prefix.endswith(body) and ctx.prefix_tokens <= 200


@pytest.mark.parametrize("max_prefix", [60, 150, 400, 768])
@pytest.mark.parametrize("max_suffix", [30, 100, 256])
def test_cuts_are_whole_lines_at_statement_starts_within_budget(max_prefix: int, max_suffix: int) -> None:
    text = _python_file(40)
    offset = text.index("value = self.data.get(key + '20'")
    budget = ContextBudget(max_prefix_tokens=max_prefix, max_suffix_tokens=max_suffix)
    ctx, warnings = build_context(text, offset, "python", count_tokens, budget)
    assert warnings == []
    assert ctx.prefix_start == 0 or text[ctx.prefix_start - 1] == "\n"
    assert ctx.suffix_end == len(text) or text[ctx.suffix_end] == "\n"
    assert ctx.prefix_tokens <= max_prefix and ctx.suffix_tokens <= max_suffix
    # A cut never lands inside a docstring.
    first_line = text[ctx.prefix_start : text.index("\n", ctx.prefix_start)]
    assert "Several lines" not in first_line and not first_line.strip().startswith('"""')


def test_more_prefix_than_suffix_with_default_budget() -> None:
    text = _python_file(80)
    ctx, _ = build_context(text, len(text) // 2, "python", count_tokens)
    assert ctx.prefix_tokens > ctx.suffix_tokens > 0


def test_prefix_start_stays_put_while_typing() -> None:
    """The prefix start moves in line strides, so the prompt cache survives keystrokes."""
    text = _python_file(60)
    offset = text.index("return value * 30") + len("return value * 30")
    starts = set()
    for typed in range(1, 40):
        ctx, _ = build_context(
            text[:offset] + "+ x" * typed + text[offset:], offset + 3 * typed, "python", count_tokens
        )
        starts.add(ctx.prefix_start)
    assert len(starts) <= 2


@pytest.mark.parametrize("side", ["prefix", "suffix"])
def test_an_overlong_line_is_cut_inside_at_a_word_boundary(side: str) -> None:
    line = "var a = [" + ", ".join(f"item{i}" for i in range(2000)) + "];"
    offset = len(line) // 2
    ctx, warnings = build_context(line, offset, "javascript", count_tokens, ContextBudget(100, 50))
    assert any(f"longer than the {side} budget" in w for w in warnings)
    assert ctx.prefix_tokens <= 100 and ctx.suffix_tokens <= 50
    assert ctx.prefix.startswith("item") and ctx.suffix.rstrip(", ").split(", ")[-1].startswith("item")


BROKEN = {
    "python": "def f(x:\n    if x\n        return [1, 2\nclass\n",
    "javascript": "function f( {\n  const x = ;\n  if (x { return }\n",
    "typescript": "interface A { x: }\nfunction f(a: ): {\n",
    "typescriptreact": "const a = <div><b></div>;\nfunction (",
    "go": "package main\nfunc f( {\n\tx := \n}\n}\n",
    "rust": "fn f(x: ) -> {\n    let = 1\n    match x {\n",
    "java": "class A { void f( { int x = ; }\n",
    "c": "int f(int x { return x +; }\n#include\n",
    "cpp": "template <class T struct A { void f() { ; }\n",
    None: "any text ü 😀 at all\n",
}


@pytest.mark.parametrize("language", list(BROKEN))
def test_broken_code_never_raises_at_any_offset(language: str | None) -> None:
    text = BROKEN[language]
    for offset in range(len(text) + 1):
        ctx, warnings = build_context(text, offset, language, count_tokens, ContextBudget(20, 10))
        assert ctx.prefix.endswith(text[ctx.prefix_start : offset]) and ctx.suffix == text[offset : ctx.suffix_end]
    assert warnings and ("syntax errors near line" in warnings[0] or "no grammar" in warnings[0])


def test_syntax_error_warning_names_the_line() -> None:
    _, warnings = build_context("x = 1\ny = (\nz = 2\n", 0, "python", count_tokens)
    assert warnings == ["syntax errors near line 2"]
    _, warnings = build_context("x = 1\ny = (\nz = 2\n", 11, "python", count_tokens)  # the line being typed
    assert warnings == []


@pytest.mark.parametrize("offset", [-1, 6])
def test_cursor_outside_the_document_is_the_callers_bug(offset: int) -> None:
    with pytest.raises(ValueError, match="outside the document"):
        build_context("x = 1", offset, "python", count_tokens)


@pytest.mark.parametrize(
    ("text", "language", "unit"),
    [
        ("def f():\n    return 1\n", "python", "    "),
        ("function f() {\n  if (x) {\n    y();\n  }\n}\n", "javascript", "  "),
        ("func f() {\n\tx := 1\n}\n", "go", "\t"),
        ("package main\n", "go", "\t"),
        ("x = 1\n", "python", "    "),
        ("int f() {\n        return 1;\n}\nint g() {\n        return 2;\n}\n", "c", " " * 8),
    ],
)
def test_indent_unit(text: str, language: str, unit: str) -> None:
    assert indent_unit(text, language) == unit


def test_marked_documents_round_trip() -> None:
    marked = parse_marked("python\nx = ║├1┤\n")
    assert (marked.language, marked.text, marked.offset, marked.completion) == ("python", "x = \n", 4, "1")


EDITS = [
    (0, 0, "# ü 😀 header\n"),
    (20, 25, "naïve = 'ç'\n"),
    (5, 5, "日本語"),
    (40, 60, ""),
    (3, 3, "\n\n"),
]


@pytest.mark.parametrize("language", ["python", "javascript", "rust"])
def test_incremental_edits_match_a_fresh_parse_with_non_ascii_text(language: str) -> None:
    text = {
        "python": "def f(x):\n    s = 'é'\n    return x + 1  # ü\n\n\nclass A:\n    pass\n",
        "javascript": "function f(x) {\n  const s = 'é';\n  return x + 1; // ü\n}\n",
        "rust": 'fn f(x: i32) -> i32 {\n    let s = "é";\n    x + 1 // ü\n}\n',
    }[language]
    doc = ParsedDocument(text, language)
    rng = random.Random(7)
    edits = [*EDITS, *((rng.randrange(60), 0, rng.choice(["😀", "x", "\n", "(", "ß="])) for _ in range(40))]
    for start, length, new in edits:
        start = min(start, len(doc.text))
        end = min(start + length, len(doc.text))
        doc.apply_edit(start, end, new)
        parser = parser_for(language)
        assert parser is not None and doc.tree is not None
        assert str(doc.tree.root_node) == str(parser.parse(doc.text.encode()).root_node)
        assert doc.tree.root_node.end_byte == len(doc.text.encode())


def test_document_context_uses_its_tree() -> None:
    doc = ParsedDocument("def f():\n    pass\n", "python")
    doc.apply_edit(13, 17, "")
    assert doc.context(13, count_tokens) == build_context(doc.text, 13, "python", count_tokens)
    assert doc.context(13, count_tokens)[0].mode == "block"


def test_edit_outside_the_document_raises() -> None:
    with pytest.raises(ValueError, match="outside the document"):
        ParsedDocument("abc", "python").apply_edit(2, 5, "x")


def test_unknown_language_document_still_edits() -> None:
    doc = ParsedDocument("hello", None)
    doc.apply_edit(5, 5, " world")
    assert (doc.text, doc.tree) == ("hello world", None)
