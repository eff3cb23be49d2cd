"""Each postprocess filter on its own, table-driven, on real contexts (`├…┤` marks the candidate)."""

import pytest

from engine.postprocess import Candidate, PostprocessOptions, postprocess
from engine.postprocess.balance_brackets import balance_brackets
from engine.postprocess.base import Filter
from engine.postprocess.check_syntax import check_syntax
from engine.postprocess.drop_blank import drop_blank
from engine.postprocess.drop_repetitive import drop_repetitive
from engine.postprocess.drop_suffix_duplicate import drop_suffix_duplicate
from engine.postprocess.drop_trailing_comment import drop_trailing_comment
from engine.postprocess.end_with_line_break import end_with_line_break
from engine.postprocess.limit_scope import limit_scope
from engine.postprocess.normalize_indentation import normalize_indentation
from tests.markers import marked_context


def _apply(apply: Filter, source: str) -> Candidate:
    marked, ctx = marked_context(source)
    assert marked.completion is not None
    return apply(Candidate(marked.completion, 1.0), ctx)


def limit_scope_past_dedents(candidate: Candidate, ctx) -> Candidate:
    return limit_scope(candidate, ctx, past_dedents=True)


CASES = [
    # drop_blank
    (drop_blank, "python\nx = ├  \n\t┤\n", ""),
    (drop_blank, "python\nx = ├1┤\n", "1"),
    # drop_repetitive
    (drop_repetitive, "python\ndef f():\n    ├x = 1\n    x = 1\n    x = 1\n    x = 1┤\n", "x = 1"),
    (drop_repetitive, "python\nx = ├foo(foo(foo(foo(foo(foo(foo(foo(foo(┤\n", ""),
    (drop_repetitive, "python\nx = ├[0, 0, 0, 0]┤\n", "[0, 0, 0, 0]"),
    (
        drop_repetitive,
        "c\nint f() {\n  ├if (x) {\n    if (y) {\n    }\n  }┤\n}\n",
        "if (x) {\n    if (y) {\n    }\n  }",
    ),
    # drop_trailing_comment: a comment after the code on the cursor's line goes, a new comment line stays
    (drop_trailing_comment, "java\nif (x) {├ // close it┤\n}\n", ""),
    (drop_trailing_comment, "python\nx = 1├  # one\ny = 2┤\n", "  # one\ny = 2"),
    (drop_trailing_comment, "python\nx = 1├  # one┤\n", ""),
    (drop_trailing_comment, "python\nx = ├1  # one┤\n", "1  # one"),
    (drop_trailing_comment, "python\ndef f():\n    ├# one\n    return 1┤\n", "# one\n    return 1"),
    (drop_trailing_comment, "python\ndef f():\n    ├# one┤\n", "# one"),
    (drop_trailing_comment, "python\nx = 1  # the ├answer┤\n", "answer"),
    # limit_scope
    (limit_scope, "python\nx = ├1\ny = 2┤\n", "1"),
    # line mode after a complete line: the next line the model writes, with its break where code follows the cursor
    (limit_scope, "javascript\nif (x) {\n  f(x);├\n  g(x);\n  h(x);┤\n}\n", "\n  g(x);"),
    (limit_scope, "java\nif (x) {\n  f(x);├\n  }\n  g(x);┤  return x;\n}\n", "\n  }\n"),
    (
        limit_scope,
        "python\ndef f():\n    ├a = 1\n    return a\n\ndef g():\n    pass┤\n",
        "a = 1\n    return a",
    ),
    (limit_scope, "python\ndef f():├\n    return 1\nprint(f())┤\n", "\n    return 1"),
    (limit_scope, "javascript\nfunction f() {├\n  return 1;\n}\nf();┤\n", "\n  return 1;\n}"),
    (
        limit_scope,
        "go\npackage main\nfunc f() {\n\t├x := 1\n\tif x > 0 {\n\t\tx++\n\t}\n}\nfunc g() {}┤\n",
        "x := 1\n\tif x > 0 {\n\t\tx++\n\t}\n}",
    ),
    # limit_scope past dedents (causal models that rerank): down to the suffix's first line's indentation
    (
        limit_scope_past_dedents,
        "python\ndef f(n):\n    while n:\n        if n % 2:\n            ├n //= 2\n        else:\n            n -= 1\n"
        "    if n:\n        g()\nx = 1┤\n    return n\n",
        "n //= 2\n        else:\n            n -= 1\n    if n:\n        g()",
    ),
    (
        limit_scope_past_dedents,  # a top-level suffix is no floor
        "python\ndef f(n):\n    if n:\n        ├n = 1\n    n = 2┤\n\ndef g():\n    pass\n",
        "n = 1",
    ),
    # drop_suffix_duplicate
    (drop_suffix_duplicate, "python\nprint(├'hi')┤)\n", "'hi'"),
    (drop_suffix_duplicate, "python\nx = foo├()┤)\n", "("),
    (drop_suffix_duplicate, "python\ns = 'abc├def'┤'\n", "def"),
    (drop_suffix_duplicate, "javascript\nfunction f() {\n  ├return 1;\n}┤\n}\n", "return 1;"),
    (drop_suffix_duplicate, "python\ndef f(x):\n    ├y = x\n    return y┤\n    return y\n", "y = x"),
    (drop_suffix_duplicate, "python\nx = [├1, 2]┤\n", "1, 2]"),
    # balance_brackets
    (balance_brackets, "python\nx = foo(├bar(1┤)\n", "bar(1)"),
    (balance_brackets, "python\nx = ├[1, 2)┤\n", "[1, 2"),
    (balance_brackets, "python\nx = ├[1, 2]]┤\n", "[1, 2]"),
    (balance_brackets, "python\nx = ├'abc┤\n", "'abc'"),
    (balance_brackets, "javascript\nif (x) ├{ y(┤\n", "{ y()"),
    (balance_brackets, "rust\nfn f<'a>(x: &'a str) -> &'a str ├{ g(x┤\n", "{ g(x)"),
    # normalize_indentation (file style from the context)
    (
        normalize_indentation(),
        "python\ndef f():\n    x = 1\n    ├if x:\n\t\ty = 2┤\n",
        "if x:\n        y = 2",
    ),
    (
        normalize_indentation(),
        "go\npackage main\nfunc f() {\n\tx := 1\n\t├if x {\n        x++\n    }┤\n}\n",
        "if x {\n\t\tx++\n\t}",
    ),
    (
        normalize_indentation(),
        "python\ndef f():\n  x = 1\n  ├if x:\n    y = 2 # aligned\n     z┤\n",
        "if x:\n    y = 2 # aligned\n     z",
    ),
    # end_with_line_break: a hole before code on its line is whole lines (HumanEval's single-line holes)
    (end_with_line_break, "python\ndef f(x):\n├    y = x┤    return y\n", "    y = x\n"),
    (end_with_line_break, "python\ndef f(x):\n    ├y = x\n┤return y\n", "y = x\n    "),
    (end_with_line_break, "python\nx = ├1┤\n", "1"),
    # normalize_indentation with LSP formattingOptions
    (normalize_indentation(2, True), "python\ndef f():\n    ├if x:\n        y = 2┤\n", "if x:\n    y = 2"),
    (normalize_indentation(4, False), "python\ndef f():\n    ├if x:\n        y = 2┤\n", "if x:\n\t\ty = 2"),
]


@pytest.mark.parametrize(
    ("apply", "source", "expected"), CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]
)
def test_filter(apply: Filter, source: str, expected: str) -> None:
    assert _apply(apply, source).text == expected


@pytest.mark.parametrize(
    ("source", "added"),
    [
        ("python\ndef f(x):\n    ├return x + 1┤\n", 0),
        ("python\ndef f(x):\n    ├return x +┤\n", 1),
        ("python\ndef f(x):\n    return (x +├ 1)┤\n", -1),
        ("javascript\nfunction f() {\n  ├if (x) {┤\n}\n", 1),
        ("typescriptreact\nconst a = <div>├{x}┤</div>;\n", 0),
        ("go\npackage main\nfunc f() int {\n\t├return 1┤\n}\n", 0),
        ("rust\nfn f() -> i32 {\n    ├1 +┤\n}\n", 1),
        ("java\nclass A {\n  int f() {\n    ├return 1;┤\n  }\n}\n", 0),
        ("c\nint f(void) {\n    ├return 1┤\n}\n", 1),
        ("cpp\nint f() {\n  ├auto v = std::vector<int>{1, 2};┤\n}\n", 0),
        ("plaintext\nanything ├goes(┤\n", None),
        # tree-sitter reads the comment and recovers; Python's own parser rejects the indented `if`
        ("python\ndef f(x):\n├    #_┤    if x == 0:\n        return 1\n    return 2\n", 1),
    ],
)
def test_check_syntax_counts_errors_the_candidate_adds(source: str, added: int | None) -> None:
    result = _apply(check_syntax(), source)
    assert result.syntax_errors_added == added if added is None or added <= 0 else result.syntax_errors_added >= 1


def test_postprocess_ranks_dedups_and_drops() -> None:
    _, ctx = marked_context("python\ndef f(x):\n    ║\n")
    candidates = [
        Candidate("return x +", 0.9),  # adds a syntax error: ranked last despite the best score
        Candidate("return x", 0.5),
        Candidate("return x\n\ndef g():\n    pass", 0.7),  # cut by scope to "return x": a duplicate
        Candidate("return [x", 0.8),  # closed by balance_brackets
        Candidate("   ", 1.0),  # blank: dropped
    ]
    ranked = postprocess(candidates, ctx)
    assert [(c.text, c.score) for c in ranked] == [
        ("return [x]", 0.8),
        ("return x", 0.7),
        ("return x +", 0.9),
    ]
    options = PostprocessOptions(drop_syntax_errors=True)
    assert [c.text for c in postprocess(candidates, ctx, options)] == ["return [x]", "return x"]


def test_postprocess_ranks_a_clean_join_first_without_a_grammar() -> None:
    _, ctx = marked_context("plaintext\nsay ║\n")
    ranked = postprocess([Candidate("a {b", 0.9), Candidate("ab", 0.5)], ctx)
    assert [c.text for c in ranked] == ["ab", "a {b"]


def test_check_syntax_keeps_the_first_lines_that_add_no_error() -> None:
    """A right first line followed by a broken one: the editor gets the right line, not nothing."""
    result = _apply(check_syntax(), "python\ndef f(x):\n    ├y = x + 1\n    return (y +┤\n")
    assert (result.text, result.syntax_errors_added) == ("y = x + 1", 0)
    broken_first = _apply(check_syntax(), "python\ndef f(x):\n    ├y = (x +\n    return y┤\n")
    assert broken_first.syntax_errors_added >= 1  # nothing to keep: the first line is already broken
    counted_only = _apply(check_syntax(cut_back=False), "python\ndef f(x):\n    ├y = x + 1\n    return (y +┤\n")
    assert counted_only.text == "y = x + 1\n    return (y +" and counted_only.syntax_errors_added >= 1


@pytest.mark.parametrize(
    ("source", "code", "comment"),
    [
        ("java\nclass A {\n  void f() {\n    ║\n  }\n}\n", "y = 1;", "// set y\n    /* to one */"),
        ("javascript\nfunction f(x) {\n  ║\n}\n", "return x;", "/* the answer */\n  // twice"),
        ("python\ndef f(x):\n    ║\n", "return x", "# return it\n    # really"),
    ],
)
def test_code_ranks_before_a_likelier_middle_that_only_comments(source: str, code: str, comment: str) -> None:
    """A trailing comment reads as likely as anything to a language model; where the cursor is in code, a
    completion that writes code is shown first."""
    _, ctx = marked_context(source)
    ranked = postprocess([Candidate(comment, 0.9), Candidate(code, 0.1)], ctx)
    assert [c.text.strip() for c in ranked] == [code.strip(), comment.strip()]


def test_a_comment_the_user_is_writing_is_ranked_by_score_alone() -> None:
    _, ctx = marked_context("python\ndef f(x):\n    # count the ║\n    return x + 1\n")
    ranked = postprocess([Candidate("# signs", 0.9), Candidate("x", 0.1)], ctx)
    assert [c.text for c in ranked] == ["# signs", "x"]
