"""The speed benchmarks' main paths on tiny random models, so a GPU run never fails on a path CI could have caught."""

import json

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from benchmarks.gpu import full_size
from benchmarks.speed import Point, compare_generate
from engine.models.configs import ARCHITECTURES, build_config
from engine.prompt import SpecialTokens


def test_full_size_small_config_writes_sane_json(tmp_path):
    threads = torch.get_num_threads()
    try:
        report = full_size.main(
            ["--config", "small", "--steps", "1,2", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)]
        )
    finally:
        torch.set_num_threads(threads)  # the script sets it for the whole process
    written = json.loads((tmp_path / "full_size.json").read_text())
    assert written["steps"] == [1, 2] == [row["steps"] for row in written["results"]]
    for row in written["results"]:
        engine = row["engine"]
        assert engine["prefill_ms"] > 0 and engine["block_ms"] > 0
        assert abs(engine["step_ms"] * row["steps"] - engine["block_ms"]) < 1e-6
        assert row["generate"]["total_ms"] > 0
    floor = written["floor"]
    assert 0 < floor["active_gb"] < floor["step_gb"]  # top-2 of 8 experts reads less than a canvas hits
    assert floor["experts_hit"] <= floor["total_weights"] and floor["kv_cache"] > 0
    assert report["results"] == written["results"]


def test_full_size_floor_of_the_26b_architecture():
    """The full config is the 25B-parameter model, ~50 GB in bf16, all experts hit by a 256-token canvas."""
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(full_size.build_config("full", 256)).to(torch.bfloat16)
    floor = full_size.weight_floor(model, canvas=256, prompt=2048)
    assert 49e9 < floor.total_weights < 52e9
    assert floor.experts_hit > 0.99 * (floor.total_weights - floor.attention - floor.dense_mlp - 2e9)
    assert 13 < 1000 * floor.step_bytes() / full_size.H100_BANDWIDTH < 17


def test_compare_generate_on_a_tiny_random_model():
    special = SpecialTokens(pad=0, eos=1, bos=2, fim_prefix=3, fim_middle=4, fim_suffix=5)
    torch.manual_seed(0)
    config = build_config(ARCHITECTURES["micro"], 64, {"pad": 0, "eos": 1, "bos": 2})
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    points = [Point(list(range(6, 30)), list(range(30, 40))), Point(list(range(10, 20)), [41, 42])]
    figures = compare_generate(model, special, "suffix_after_canvas", points, canvas=8, steps=3)
    assert figures.engine_ms > 0 and figures.generate_ms > 0
    assert figures.engine_steps == figures.generate_steps == 3  # fixed steps: neither stops early
    assert 0 <= figures.position_agreement <= 1 and 0 <= figures.middle_agreement <= 1
    assert 0 < figures.engine_tpf <= 8 / 3 and 0 < figures.generate_tpf <= 8 / 3
    assert model.config.canvas_length == 32  # restored after generate() borrowed it
