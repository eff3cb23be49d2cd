"""The training corpus: the interpreter's standard library plus the sources of permissively licensed packages.

Python comes from what is installed. JavaScript and TypeScript come from pinned npm packages that ship their
hand-written sources, and Go from Debian's package of its standard library: `blockfill corpus fetch` downloads
them with the ordinary clients (npm, apt-get) into a cache directory, once. Files are split into train and
validation by a hash of their path, so the split is stable across runs and machines. Benchmark data
(`../shared/data`) is never read here.
"""

import hashlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import ConfigError

DEFAULT_CACHE = Path("runs/corpus")
PACK_MANIFEST = "manifest.json"
LANGUAGE_SUFFIXES = {
    "python": (".py",),
    "javascript": (".js", ".mjs", ".cjs"),
    "typescript": (".ts",),
    "go": (".go",),
}
# npm packages whose tarballs hold hand-written sources (not only bundles); licences are read from package.json.
NPM_PACKAGES = (
    "lodash@4.17.21",
    "express@4.21.2",
    "eslint@9.17.0",
    "webpack@5.97.1",
    "three@0.171.0",
    "axios@1.7.9",
    "mocha@11.0.1",
    "preact@10.25.3",
    "rxjs@7.8.1",
    "effect@3.12.0",
    "@trpc/server@11.0.0",
    "mobx@6.13.5",
    "@tanstack/query-core@5.62.8",
    "immer@10.1.1",
)
# Debian packages of sources: (package, directory inside it, licence as its copyright file states it).
DEBIAN_PACKAGES = (("golang-1.19-src", "usr/share/go-1.19/src", "BSD-3-Clause"),)
_SKIP_DIRS = ("dist", "node_modules", "testdata", "vendor", "build")  # bundles, fixtures and copies
MAX_LINE_CHARS = 400  # longer lines mean minified or generated code

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
    language: str = "python"


def _licence(dist: importlib.metadata.Distribution) -> str:
    """The licence as the package declares it: the SPDX expression, else its classifiers, else the free text."""
    meta = dist.metadata
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if "License ::" in c]
    free_text = (meta.get("License") or "").strip().splitlines()
    text = meta.get("License-Expression") or "; ".join(classifiers) or (free_text[0] if free_text else "unknown")
    return text.strip()[:80]


def _is_permissive(licence: str) -> bool:
    return any(word.lower() in licence.lower() for word in _PERMISSIVE)


def _is_hand_written(path: Path) -> bool:
    if path.name.endswith((".d.ts", ".min.js")) or not 0 < path.stat().st_size <= MAX_FILE_BYTES:
        return False
    try:
        return max(map(len, path.read_text(encoding="utf-8").splitlines()), default=0) <= MAX_LINE_CHARS
    except (UnicodeDecodeError, OSError):
        return False


def _source_files(root: Path, language: str, skip_dirs: tuple[str, ...] = ()) -> tuple[Path, ...]:
    files = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in LANGUAGE_SUFFIXES[language] or not path.is_file():
            continue
        if any(part in skip_dirs for part in path.relative_to(root).parts):
            continue
        # Python keeps the size rule alone, as blockfill-tiny's first 900 steps saw it.
        keep = 0 < path.stat().st_size <= MAX_FILE_BYTES if language == "python" else _is_hand_written(path)
        if keep:
            files.append(path)
    return tuple(files)


def _npm_dir(cache: Path, spec: str) -> Path:
    return cache / "npm" / spec.replace("/", "__")


def _debian_dir(cache: Path, package: str) -> Path:
    return cache / "debian" / package


def fetch_sources(cache: Path = DEFAULT_CACHE) -> None:
    """Download the npm and Debian sources into `cache`, skipping what is already there. Each package is unpacked
    beside its final place and renamed into it, so an interrupted fetch leaves nothing half-written."""
    for spec in NPM_PACKAGES:
        target = _npm_dir(cache, spec)
        if not target.exists():
            with _staging(target) as tmp:
                pack = ["npm", "pack", "--silent", "--pack-destination", tmp, spec]
                subprocess.run(pack, check=True, capture_output=True)
                with tarfile.open(next(Path(tmp).glob("*.tgz"))) as archive:
                    archive.extractall(Path(tmp) / "out", filter="data")
    for package, _, _ in DEBIAN_PACKAGES:
        target = _debian_dir(cache, package)
        if not target.exists():
            with _staging(target) as tmp:
                download = ["apt-get", "download", package]
                if subprocess.run(download, cwd=tmp, capture_output=True).returncode != 0:
                    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)  # a fresh machine
                    subprocess.run(download, cwd=tmp, check=True, capture_output=True)
                deb = next(Path(tmp).glob("*.deb"))
                subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "out")], check=True, capture_output=True)
                (Path(tmp) / "out" / "VERSION").write_text(deb.name.split("_")[1])


@contextmanager
def _staging(target: Path) -> Iterator[str]:
    """A temporary directory beside `target`; its `out` folder becomes `target` when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        yield tmp
        (Path(tmp) / "out").rename(target)


def _npm_sources(cache: Path) -> list[Source]:
    sources = []
    for spec in NPM_PACKAGES:
        root = _npm_dir(cache, spec) / "package"
        if not root.exists():
            continue
        meta = json.loads((root / "package.json").read_text())
        licence = str(meta.get("license", "unknown"))
        if not _is_permissive(licence):
            continue
        for language in ("javascript", "typescript"):
            files = _source_files(root, language, _SKIP_DIRS)
            if files:
                sources.append(Source(meta["name"], meta["version"], licence, files, language))
    return sources


def _debian_sources(cache: Path) -> list[Source]:
    sources = []
    for package, subdir, licence in DEBIAN_PACKAGES:
        target = _debian_dir(cache, package)
        if target.exists():
            files = _source_files(target / subdir, "go", _SKIP_DIRS)
            sources.append(Source(package, (target / "VERSION").read_text(), licence, files, "go"))
    return sources


def pack_sources(sources: list[Source], destination: Path) -> None:
    """Every file of `sources` and a manifest in one .tar.xz: the same corpus on a machine that can fetch
    nothing and has other package versions (a lent GPU). Unpacked, it serves as a `collect_sources` cache.
    Each file keeps its parent folder's name, so the train/validation split (`is_validation`) is unchanged."""
    manifest = []
    tmp = destination.with_name(destination.name + ".tmp")
    with tarfile.open(tmp, "w:xz") as archive:
        for index, source in enumerate(sources):
            root = Path(os.path.commonpath([f.parent for f in source.files]))
            names = [f"{index}/{root.name}/{f.relative_to(root)}" for f in source.files]
            for path, name in zip(source.files, names, strict=True):
                archive.add(path, arcname=name)
            manifest.append({**asdict(source), "files": names})
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(PACK_MANIFEST)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    os.replace(tmp, destination)


def _packed_sources(directory: Path) -> list[Source]:
    manifest = json.loads((directory / PACK_MANIFEST).read_text())
    return [Source(**{**entry, "files": tuple(directory / name for name in entry["files"])}) for entry in manifest]


def collect_sources(cache: Path = DEFAULT_CACHE, languages: tuple[str, ...] = ("python",)) -> list[Source]:
    """Every source of the wanted languages: the standard library, the allow-listed installed packages that are
    permissively licensed, and what `fetch_sources` put in `cache`; or, when `cache` is an unpacked
    `pack_sources` archive, exactly what it holds. A wanted language with no files is an error."""
    if (cache / PACK_MANIFEST).exists():
        sources = [s for s in _packed_sources(cache) if s.language in languages]
    else:
        sources = _python_sources() if "python" in languages else []
        sources += [s for s in _npm_sources(cache) + _debian_sources(cache) if s.language in languages]
    missing = set(languages) - {s.language for s in sources if s.files}
    if missing:
        raise ConfigError(
            f"no training sources for {', '.join(sorted(missing))} in {cache}: run `blockfill corpus fetch` first"
        )
    return sources


def _python_sources() -> list[Source]:
    """The standard library and every allow-listed package that is installed and permissively licensed."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    version = ".".join(map(str, sys.version_info[:3]))
    sources = [Source("cpython-stdlib", version, "PSF-2.0", _source_files(stdlib, "python", ("site-packages", "test")))]
    for name in PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        licence = _licence(dist)
        if not _is_permissive(licence):
            continue
        top = (dist.read_text("top_level.txt") or name).split()
        roots = [Path(str(dist.locate_file(t))) for t in top]
        files = tuple(f for r in roots if r.is_dir() for f in _source_files(r, "python"))
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


def split_texts(
    sources: list[Source], corpus_limit: int | None = None
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Training and validation texts by language (`corpus_limit`: at most that many files a source)."""
    train: dict[str, list[str]] = {}
    validation: dict[str, list[str]] = {}
    for source in sources:
        files = source.files[:corpus_limit]
        train.setdefault(source.language, []).extend(read_texts([f for f in files if not is_validation(f)]))
        validation.setdefault(source.language, []).extend(read_texts([f for f in files if is_validation(f)]))
    return train, validation
