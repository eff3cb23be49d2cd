"""Grammars load offline from the per-language wheels, by LSP language id and by file extension."""

import sys

import pytest

from engine.languages import grammar_name, language_from_path, parser_for, syntax_errors

SAMPLES = {
    "python": "def f(x):\n    return x\n",
    "javascript": "function f(x) { return x; }\n",
    "javascriptreact": "const a = <div>{x}</div>;\n",
    "typescript": "function f(x: number): number { return x; }\n",
    "typescriptreact": "const a = (x: number) => <b>{x}</b>;\n",
    "go": "package main\nfunc f(x int) int { return x }\n",
    "rust": "fn f(x: i32) -> i32 { x }\n",
    "java": "class A { int f(int x) { return x; } }\n",
    "c": "int f(int x) { return x; }\n",
    "cpp": "template <typename T> T f(T x) { return x; }\n",
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_each_language_parses_its_sample_without_errors(language: str) -> None:
    parser = parser_for(language)
    assert parser is not None
    root = parser.parse(SAMPLES[language].encode()).root_node
    assert not root.has_error, str(root)


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b.py", "python"),
        ("x.PYI", "python"),
        ("app.jsx", "javascriptreact"),
        ("lib.mjs", "javascript"),
        ("m.ts", "typescript"),
        ("view.tsx", "typescriptreact"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("A.java", "java"),
        ("x.h", "c"),
        ("x.hpp", "cpp"),
        ("kernel.cu", "cuda-cpp"),
        ("README.md", None),
        ("Makefile", None),
    ],
)
def test_language_from_path(path: str, language: str | None) -> None:
    assert language_from_path(path) == language


@pytest.mark.parametrize(
    ("language", "grammar"),
    [("typescriptreact", "tsx"), ("javascriptreact", "javascript"), ("Python", "python"), ("tsx", "tsx"),
     ("cobol", None), ("", None), (None, None)],
)  # fmt: skip
def test_grammar_name(language: str | None, grammar: str | None) -> None:
    assert grammar_name(language) == grammar


@pytest.mark.parametrize("language", [None, "plaintext", "cobol", "markdown"])
def test_unknown_language_has_no_parser(language: str | None) -> None:
    assert parser_for(language) is None


def test_parser_is_made_once_per_language() -> None:
    assert parser_for("rust") is parser_for("rust")


def test_no_download_capable_package_is_imported() -> None:
    """tree-sitter-language-pack 1.x fetches grammars at run time; the engine must not depend on it."""
    for language in SAMPLES:
        parser_for(language)
    assert "tree_sitter_language_pack" not in sys.modules


@pytest.mark.parametrize(
    ("source", "rows"),
    [("def f(:\n    pass\n", [0]), ("x = 1\n", []), ("x = (1,\ny = 2\n", [0])],
)
def test_syntax_errors_lists_error_and_missing_nodes(source: str, rows: list[int]) -> None:
    parser = parser_for("python")
    assert parser is not None
    errors = syntax_errors(parser.parse(source.encode()).root_node)
    assert [node.start_point.row for node in errors][: len(rows)] == rows
    assert bool(errors) == bool(rows)


@pytest.mark.parametrize(("name", "grammar"), [("py", "python"), ("js", "javascript"), ("ts", "typescript")])
def test_bare_extensions_name_languages_as_task_files_do(name, grammar):
    assert grammar_name(name) == grammar
