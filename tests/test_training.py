"""Training settings that are not the corpus: mixed precision, learning-rate schedules, resumes."""

import json
from dataclasses import asdict

import pytest
import torch

from engine.errors import ConfigError
from engine.training.train import autocast_dtype


def test_precision_setting_picks_the_autocast_dtype():
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert autocast_dtype("auto", "cpu") == (torch.bfloat16 if native else None)
    with pytest.raises(ConfigError, match="precision"):
        autocast_dtype("fp8", "cpu")


def test_the_adapters_learning_rate_anneals_from_decay_from_and_a_resume_keeps_the_schedule(tmp_path):
    from engine.training.coder_train import CoderTrainConfig, learning_rate, run_settings

    constant = CoderTrainConfig(lr=1e-3, warmup=10, steps=100)
    assert [learning_rate(constant, step) for step in (0, 9, 10, 99)] == pytest.approx([1e-4, 1e-3, 1e-3, 1e-3])
    annealed = CoderTrainConfig(lr=1e-3, warmup=10, steps=100, decay_from=60)
    assert [learning_rate(annealed, step) for step in (59, 60, 80, 100)] == pytest.approx([1e-3, 1e-3, 5.5e-4, 1e-4])
    (tmp_path / "train_config.json").write_text(json.dumps({**asdict(annealed), "threads": 2}))
    assert run_settings(tmp_path)["decay_from"] == 60 and "threads" not in run_settings(tmp_path)


def test_a_resume_records_only_the_settings_it_changes(tmp_path):
    from engine.training.train import _record_phase

    path = tmp_path / "phases.json"
    _record_phase(path, 0, {"out_dir": "a", "steps": 900, "lr": 0.002})
    _record_phase(path, 900, {"out_dir": "b", "steps": 900, "lr": 0.002})  # nothing changed: no phase
    _record_phase(path, 900, {"out_dir": "b", "steps": 2000, "lr": 0.002})
    assert json.loads(path.read_text()) == [
        {"from_step": 0, "changed": {"steps": 900, "lr": 0.002}},
        {"from_step": 900, "changed": {"steps": 2000}},
    ]


def test_a_run_starts_from_an_exported_checkpoint_and_stops_on_its_time_limit(tmp_path):
    """`init_from` loads an exported model's weights and tokenizer (at lr 0 they come out unchanged);
    `time_limit_minutes` ends the run after the step that passes it, with a checkpoint to resume from."""
    from transformers import DiffusionGemmaForBlockDiffusion

    from engine.training.export import export_checkpoint
    from engine.training.train import TrainConfig, run_training

    micro = dict(
        architecture="micro", vocab_size=400, tokenizer_sample_mb=1, batch_size=2, eval_every=100, eval_batches=1,
        canvas_lengths=[8], max_prefix_tokens=32, max_suffix_tokens=16, languages="python:1",
    )  # fmt: skip
    first = run_training(TrainConfig(out_dir=str(tmp_path / "first"), steps=2, **micro), corpus_limit=20)
    exported = export_checkpoint(first, tmp_path / "exported")
    second = TrainConfig(
        out_dir=str(tmp_path / "second"), steps=50, lr=0.0, init_from=str(exported), time_limit_minutes=1e-6, **micro
    )
    run_training(second, corpus_limit=20)
    state = torch.load(tmp_path / "second" / "last.pt", weights_only=False)
    assert state["step"] == 1
    start = DiffusionGemmaForBlockDiffusion.from_pretrained(str(exported), dtype=torch.float32).state_dict()
    assert all(torch.equal(state["model"][name], tensor) for name, tensor in start.items())
    with pytest.raises(ConfigError, match="cannot start from"):
        run_training(
            TrainConfig(**{**asdict(second), "out_dir": str(tmp_path / "third"), "architecture": "blockfill-tiny"}),
            corpus_limit=20,
        )


def test_validation_corrupts_alike_whatever_the_training_noise_and_self_conditioning():
    """Runs that differ in noise_power or self_conditioning_rate are compared on the same validation batches."""
    from transformers import AutoTokenizer

    from engine.models.loading import EMBEDDED_DIR
    from engine.prompt import SpecialTokens
    from engine.training.train import TrainConfig, new_model, validation_loss

    tokenizer = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR))
    special = SpecialTokens.of(tokenizer)
    texts = {"python": ["def f(x):\n    return x + 1\n\n\nclass A:\n    pass\n" * 8]}
    base = TrainConfig(architecture="micro", batch_size=4, eval_batches=2, canvas_lengths=[16], languages="python:1")
    torch.manual_seed(0)
    model = new_model(base, len(tokenizer), special)
    losses = [
        validation_loss(model, texts, tokenizer, cfg, special, "cpu")
        for cfg in (base, TrainConfig(**{**asdict(base), "noise_power": 0.5, "self_conditioning_rate": 0.0}))
    ]
    assert losses[0] == losses[1]
