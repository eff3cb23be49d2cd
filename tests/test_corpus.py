"""The multi-language training corpus (issue 7): what a fetched cache contributes, and how languages are mixed.

The cache is laid out here by hand exactly as `blockfill corpus fetch` leaves it (npm's `package/` folder, the
unpacked Debian tree); the download itself needs npm and apt-get on a network and is run by hand (RESULTS.md).
"""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine.errors import ConfigError
from engine.models.loading import EMBEDDED_DIR
from engine.training.corpus import DEBIAN_PACKAGES, NPM_PACKAGES, collect_sources
from engine.training.train import ExampleStream, TrainConfig, language_weights

HAND_WRITTEN_JS = "export function add(a, b) {\n  return a + b;\n}\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _npm_package(cache: Path, spec: str, licence: str) -> Path:
    root = cache / "npm" / spec.replace("/", "__") / "package"
    name, _, version = spec.rpartition("@")
    _write(root / "package.json", json.dumps({"name": name, "version": version, "license": licence}))
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = _npm_package(tmp_path, NPM_PACKAGES[0], "MIT")
    _write(root / "src" / "add.js", HAND_WRITTEN_JS)
    _write(root / "src" / "types.ts", "export type Id = string;\n")
    _write(root / "src" / "types.d.ts", "export type Id = string;\n")  # declarations: generated, skipped
    _write(root / "add.min.js", "function add(a,b){return a+b}\n")  # minified by name
    _write(root / "bundle.js", "var a=" + "1+" * 300 + "1;\n")  # minified by line length
    _write(root / "dist" / "add.js", HAND_WRITTEN_JS)  # a build output
    closed = _npm_package(tmp_path, NPM_PACKAGES[1], "SEE LICENSE IN LICENSE.txt")  # not permissive: skipped
    _write(closed / "index.js", HAND_WRITTEN_JS)
    package, subdir, _ = DEBIAN_PACKAGES[0]
    go = tmp_path / "debian" / package
    _write(go / "VERSION", "1.19.8-2")
    _write(go / subdir / "strings" / "strings.go", "package strings\n\nfunc Len(s string) int { return len(s) }\n")
    _write(go / subdir / "strings" / "testdata" / "x.go", "package x\n")  # fixtures: skipped
    return tmp_path


def test_a_fetched_cache_gives_hand_written_sources_per_language(cache: Path):
    sources = collect_sources(cache, ("javascript", "typescript", "go"))
    found = {(s.language, s.name): sorted(f.name for f in s.files) for s in sources}
    js_name = NPM_PACKAGES[0].rpartition("@")[0]
    assert found == {
        ("javascript", js_name): ["add.js"],
        ("typescript", js_name): ["types.ts"],
        ("go", DEBIAN_PACKAGES[0][0]): ["strings.go"],
    }
    licences = {s.language: (s.license, s.version) for s in sources}
    assert licences["go"] == ("BSD-3-Clause", "1.19.8-2") and licences["javascript"][0] == "MIT"


def test_a_language_without_sources_names_the_fetch_command(tmp_path: Path):
    with pytest.raises(ConfigError, match="blockfill corpus fetch"):
        collect_sources(tmp_path, ("python", "go"))


def test_python_comes_from_the_installed_packages_without_a_cache(tmp_path: Path):
    sources = collect_sources(tmp_path, ("python",))
    assert {s.language for s in sources} == {"python"} and "cpython-stdlib" in {s.name for s in sources}


def test_language_shares_parse_and_reject_nonsense():
    assert language_weights("python:0.7, go:0.3") == {"python": 0.7, "go": 0.3}
    for bad in ("python", "cobol:1", "python:0", "python:x"):
        with pytest.raises(ConfigError):
            language_weights(bad)


def test_examples_follow_the_language_shares():
    tokenizer = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR))
    texts = {"python": ["def f(x):\n    return x + 1\n" * 4], "go": ["func f(x int) int {\n\treturn x + 1\n}\n" * 4]}
    cfg = TrainConfig(languages="python:0.8,go:0.2", batch_size=50, canvas_lengths=[32])
    stream = ExampleStream(texts, tokenizer, cfg, seed=0)
    examples, _ = stream.next_examples()
    go_rows = sum("func" in tokenizer.decode(e.prefix_ids + e.middle_ids + e.suffix_ids) for e in examples)
    assert 3 <= go_rows <= 20  # 10 expected of 50
    # A language with no texts is never drawn; the stream is reproducible from its seed.
    assert ExampleStream({"python": texts["python"]}, tokenizer, cfg, seed=0).languages == ("python",)
    again, _ = ExampleStream(texts, tokenizer, cfg, seed=0).next_examples()
    assert [e.middle_ids for e in again] == [e.middle_ids for e in examples]


def test_a_pack_unpacks_into_the_same_sources_and_split(cache: Path, tmp_path: Path):
    """`blockfill corpus pack`, then the archive unpacked elsewhere serves as the cache: same files, same split."""
    import tarfile

    from engine.cli import main
    from engine.training.corpus import is_validation

    archive = tmp_path / "corpus.tar.xz"
    assert main(["corpus", "pack", "--to", str(archive), "--dir", str(cache), "--languages", "javascript:1,go:1"]) == 0
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as packed:
        packed.extractall(unpacked, filter="data")
    before = collect_sources(cache, ("javascript", "go"))
    after = collect_sources(unpacked, ("javascript", "go"))
    assert [(s.name, s.language, s.license, s.version) for s in after] == [
        (s.name, s.language, s.license, s.version) for s in before
    ]
    for old, new in zip(before, after, strict=True):
        assert [f.read_text() for f in new.files] == [f.read_text() for f in old.files]
        assert [is_validation(f) for f in new.files] == [is_validation(f) for f in old.files]
    with pytest.raises(ConfigError, match="typescript"):  # a pack holds only what it was made with
        collect_sources(unpacked, ("typescript",))
