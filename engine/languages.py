"""Which tree-sitter grammar parses a document, by LSP language id or by file extension.

Grammars come from the per-language wheels (`tree-sitter-python`, `tree-sitter-typescript`, ...), which ship
compiled parsers. tree-sitter-language-pack 1.x is not used: it downloads each grammar from GitHub on first
use (`get_parser("python")` raises `DownloadError` offline), and blockfill must work without a network.
A language with no grammar still completes: callers get `None` and fall back to line mode, plain-text cuts.
"""

import importlib
import logging
from functools import cache
from pathlib import PurePath

from tree_sitter import Language, Node, Parser

log = logging.getLogger(__name__)

# Grammar name -> (module of its wheel, function returning the language pointer).
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

# LSP language id (what editors send in didOpen) -> grammar name. The JavaScript grammar parses JSX too.
_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "cuda-cpp": "cpp",
}

# File extension -> LSP language id, for the batch CLI, which has paths rather than language ids.
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".cu": "cuda-cpp",
}


def language_from_path(path: str) -> str | None:
    """The LSP language id for a file name, or None for an extension without a grammar."""
    return _EXTENSIONS.get(PurePath(path).suffix.lower())


def grammar_name(language: str | None) -> str | None:
    """The grammar behind an LSP language id (a grammar name or file extension is accepted too), or None."""
    if language is None:
        return None
    key = language.lower()
    key = _EXTENSIONS.get(f".{key}", key)  # a bare extension ("py", "js"), as task files often name languages
    return _LANGUAGE_IDS.get(key, key if key in _GRAMMARS else None)


@cache
def _load(grammar: str) -> Language | None:
    module_name, function = _GRAMMARS[grammar]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        log.warning("grammar package %s is not installed: %s completes in line mode", module_name, grammar)
        return None
    return Language(getattr(module, function)())


@cache
def parser_for(language: str | None) -> Parser | None:
    """A parser for an LSP language id, made once per language; None when no grammar is installed.

    A tree-sitter Parser is not thread-safe: share it only within one thread (the server's event loop).
    """
    grammar = grammar_name(language)
    loaded = _load(grammar) if grammar else None
    return Parser(loaded) if loaded else None


def syntax_errors(root: Node, limit: int | None = None) -> list[Node]:
    """ERROR and MISSING nodes under `root` in document order, descending only into subtrees that hold one."""
    found: list[Node] = []
    stack = [root]
    while stack and (limit is None or len(found) < limit):
        node = stack.pop()
        if node.is_error or node.is_missing:
            found.append(node)
        elif node.has_error:
            stack.extend(reversed(node.children))
    return found
