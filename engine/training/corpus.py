"""The training corpus: the interpreter's standard library plus the sources of permissively licensed packages.

Files are split into train and validation by a hash of their path, so the split is stable across runs and
machines. Benchmark data (`../shared/data`) is never read here.
"""

import hashlib
import importlib.metadata
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Installed distributions whose Python sources we train on (their licences are checked at run time).
PACKAGES = (
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "safetensors",
    "pygls",
    "lsprotocol",
    "tqdm",
    "optimum",
    "attrs",
    "cattrs",
    "packaging",
    "pydantic",
    "click",
    "rich",
    "typer",
    "filelock",
    "fsspec",
    "jinja2",
    "networkx",
    "sympy",
    "numpy",
    "pyyaml",
    "anyio",
    "pytest",
    "pluggy",
)
_PERMISSIVE = ("MIT", "BSD", "Apache", "PSF", "Python Software Foundation", "ISC", "MPL")
MAX_FILE_BYTES = 400_000  # generated tables and vendored blobs teach nothing about code


@dataclass(frozen=True)
class Source:
    """One body of code in the corpus, with what the model card must say about it."""

    name: str
    version: str
    license: str
    files: tuple[Path, ...]


def _licence(dist: importlib.metadata.Distribution) -> str:
    """The licence as the package declares it: the SPDX expression, else its classifiers, else the free text."""
    meta = dist.metadata
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if "License ::" in c]
    free_text = (meta.get("License") or "").strip().splitlines()
    text = meta.get("License-Expression") or "; ".join(classifiers) or (free_text[0] if free_text else "unknown")
    return text.strip()[:80]


def _python_files(root: Path, skip_dirs: tuple[str, ...] = ()) -> tuple[Path, ...]:
    files = []
    for path in sorted(root.rglob("*.py")):
        if any(part in skip_dirs for part in path.relative_to(root).parts):
            continue
        if path.is_file() and 0 < path.stat().st_size <= MAX_FILE_BYTES:
            files.append(path)
    return tuple(files)


def collect_sources() -> list[Source]:
    """The standard library and every allow-listed package that is installed and permissively licensed."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    version = ".".join(map(str, sys.version_info[:3]))
    sources = [Source("cpython-stdlib", version, "PSF-2.0", _python_files(stdlib, ("site-packages", "test")))]
    for name in PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        licence = _licence(dist)
        if not any(word.lower() in licence.lower() for word in _PERMISSIVE):
            continue
        top = (dist.read_text("top_level.txt") or name).split()
        roots = [Path(str(dist.locate_file(t))) for t in top]
        files = tuple(f for r in roots if r.is_dir() for f in _python_files(r))
        if files:
            sources.append(Source(name, dist.version, licence, files))
    return sources


def is_validation(path: Path, every: int = 50) -> bool:
    """About 1 file in `every` is held out, chosen by a hash of its name so that it never moves."""
    digest = hashlib.sha1(str(path.name + path.parent.name).encode()).digest()
    return digest[0] % every == 0


def read_texts(paths: list[Path]) -> list[str]:
    """File contents as text; undecodable files are skipped rather than mangled."""
    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return texts
