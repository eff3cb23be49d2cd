"""Model specs: the embedded model, a local directory, a hub id, and every broken checkpoint a user can have."""

import shutil

import pytest
import torch
from transformers.utils import logging as transformers_logging

from engine.errors import ModelLoadError
from engine.models.loading import EMBEDDED_DIR, load_model


def _copy(checkpoint, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(checkpoint, target)
    return target


def test_local_directory_loads_in_fp32_on_cpu(toy_checkpoint):
    loaded = load_model(str(toy_checkpoint), device="cpu")
    assert loaded.device.type == "cpu"
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert not loaded.model.training
    assert loaded.layout == "suffix_after_canvas"
    assert loaded.special.fim_suffix is not None


def test_a_load_from_disk_draws_no_progress_bar(toy_checkpoint, capfd):
    """transformers' "Loading weights" bar was the first line `bash setup.sh`'s demo printed."""
    load_model(str(toy_checkpoint), device="cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert transformers_logging.is_progress_bar_enabled()  # given back for whatever loads next


def test_text_only_model_has_no_real_vision_tower(toy_checkpoint):
    loaded = load_model(str(toy_checkpoint), device="cpu")
    vision = sum(p.numel() for p in loaded.model.model.encoder.vision_tower.parameters())
    assert vision < 1_000_000  # the 5.23 default vision tower alone is 168M parameters


@pytest.mark.skipif(not (EMBEDDED_DIR / "model.safetensors").exists(), reason="embedded checkpoint not shipped")
def test_embedded_model_loads_and_is_small():
    loaded = load_model("embedded", device="cpu")
    assert loaded.name == "blockfill-tiny"
    assert (EMBEDDED_DIR / "model.safetensors").stat().st_size < 25_000_000
    assert (EMBEDDED_DIR / "MODEL_CARD.md").exists()


def test_uncached_hub_id_says_how_to_fetch_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache, whatever this machine has
    with pytest.raises(ModelLoadError, match="hf download google/diffusiongemma-26B-A4B-it"):
        load_model("google/diffusiongemma-26B-A4B-it", device="cpu")


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"), device="cpu")


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), device="cpu")


def test_partial_checkpoint_without_weights(toy_checkpoint, tmp_path):
    model_dir = _copy(toy_checkpoint, tmp_path)
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="partial checkpoint"):
        load_model(str(model_dir), device="cpu")


def test_partial_checkpoint_without_tokenizer(toy_checkpoint, tmp_path):
    model_dir = _copy(toy_checkpoint, tmp_path)
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(str(model_dir), device="cpu")


def test_corrupt_weights(toy_checkpoint, tmp_path):
    model_dir = _copy(toy_checkpoint, tmp_path)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(str(model_dir), device="cpu")


def test_corrupt_config(toy_checkpoint, tmp_path):
    model_dir = _copy(toy_checkpoint, tmp_path)
    (model_dir / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(str(model_dir), device="cpu")


def test_wrong_architecture(toy_checkpoint, tmp_path):
    model_dir = _copy(toy_checkpoint, tmp_path)
    (model_dir / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelLoadError, match="'llama' model"):
        load_model(str(model_dir), device="cpu")


def test_cuda_requested_without_a_gpu(toy_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        load_model(str(toy_checkpoint), device="cuda")
