"""A GPU lease end to end on the CPU: stage, carry piece by piece, unpack, train for a second, send, join, load the
adapter, resume on the CPU. A tiny random Qwen2 stands in for the base; the device is a second folder tree, and
every simulated call is held to the device tool's limits (carried bytes beside the tree, files and bytes back,
command length). The plan's own command strings are what runs, parsed by the driver's parser."""

import json
import random
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from engine import cli
from engine.errors import ConfigError
from engine.models.loading import load_model
from engine.training import gpu_lease, lease_plan
from engine.training.coder_train import CoderTrainConfig, run_coder_training
from engine.training.corpus import Source, is_validation, pack_sources
from engine.training.pieces import MANIFEST, Manifest, Piece
from tests.toy_coder import train_toy_base

PIECE = 96 << 10  # small pieces: the bundle crosses in several calls
RETURN_PIECE = 16 << 10  # and the run comes back in several batches
TINY = dict(
    mask_token="<pad>",
    block_size=4,
    rank=4,
    alpha=8.0,
    windows=2,
    accumulate=1,
    max_prefix_tokens=32,
    max_suffix_tokens=16,
    max_middle_tokens=8,
    languages="python:1.0",
    eval_examples=2,
    eval_every=2,
    save_every=1,
    threads=1,
    device="cpu",
    precision="fp32",
)
DEVICE_SETTINGS = ("device=cpu", "threads=1", "precision=bf16", "save_every=1", "eval_every=3")  # bf16: CUDA's path


def _corpus_pack(root: Path) -> Path:
    """A pack of eight small Python files, two of them held out by `is_validation`."""
    rng, candidates = random.Random(0), [root / "src" / "toy" / f"module_{i}.py" for i in range(400)]
    files = [p for p in candidates if is_validation(p)][:2] + [p for p in candidates if not is_validation(p)][:6]
    files[0].parent.mkdir(parents=True)
    for path in files:
        path.write_text("\n\n".join(f"def f{i}(x):\n    return x * {rng.randint(1, 9)}\n" for i in range(12)))
    pack = root / "corpus.tar.xz"
    pack_sources([Source("toy", "1", "MIT", tuple(files), "python")], pack)
    shutil.unpack_archive(pack, root / "corpus")
    return pack


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A checkout with a tiny base, a corpus pack and a CPU-started run of two steps."""
    root = tmp_path / "here"
    base = train_toy_base(root / "toy-base", steps=0)
    pack = _corpus_pack(root)
    monkeypatch.chdir(root)
    config = CoderTrainConfig(out_dir="runs/blockfill-coder", base=str(base), corpus_dir="corpus", steps=2, **TINY)
    run_coder_training(config)
    monkeypatch.setattr(lease_plan, "RETURN_PIECE_BYTES", RETURN_PIECE)
    return root, base, pack


def _call(call: lease_plan.Call, here: Path, device: Path, monkeypatch) -> list[Path]:
    """One `run` call: the carried paths travel, the command's steps run there, $OUT comes back checked."""
    carried = 0
    for path in call.carry:
        (device / "repo" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(here / path, device / "repo" / path)
        carried += (here / path).stat().st_size
    assert carried <= PIECE + (4 << 10) and len(call.carry) <= lease_plan.CARRY_PATHS
    assert len(call.command) <= lease_plan.COMMAND_CHARS
    out = device / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    monkeypatch.chdir(device / "repo")
    monkeypatch.setenv("OUT", str(out))
    for step in re.split(r"&&|;", call.command):
        words = shlex.split(step)
        assert gpu_lease.main(words[words.index("engine.training.gpu_lease") + 1 :]) == 0, step
    back = sorted(out.rglob("*"))
    assert len(back) <= lease_plan.RETURN_FILES
    assert all(p.stat().st_size <= lease_plan.RETURN_FILE_BYTES for p in back)
    assert sum(p.stat().st_size for p in back) <= lease_plan.RETURN_BYTES
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in back)
    monkeypatch.chdir(here)
    return back


def test_a_lease_trains_on_from_the_cpu_run_and_the_cpu_goes_on_from_the_lease(here, tmp_path, monkeypatch):
    root, base, pack = here
    manifest = gpu_lease.stage(str(base), pack, PIECE, resume_from=Path("runs/blockfill-coder"))
    assert len(manifest.pieces) >= 3 and all(p.size <= PIECE for p in manifest.pieces)
    returned = lease_plan.return_estimate((root / "runs/blockfill-coder/last.pt").stat().st_size, 0)
    calls, minutes = lease_plan.plan_calls(manifest, 0, returned, minutes=0.02, settings=DEVICE_SETTINGS)
    assert len(calls) > len(manifest.pieces)  # at least one batch comes back after the training call

    device = tmp_path / "device"
    monkeypatch.setenv("BLOCKFILL_GPU_WORK", str(device / "work"))
    gpu_return = root / "runs" / "gpu-return"
    gpu_return.mkdir()
    for call in calls:
        for path in _call(call, root, device, monkeypatch):
            shutil.copy2(path, gpu_return / path.name)
    assert len(list(gpu_return.glob("run.tar.*"))) == len(Manifest.read(gpu_return / MANIFEST).pieces) > 1

    package = root / "package" / "blockfill-coder"
    gpu_lease.join([gpu_return], root / "runs" / "blockfill-coder", package)
    history = json.loads((root / "runs/blockfill-coder/history.json").read_text())
    assert [h["step"] for h in history[:2]] == [1, 2] and history[-1]["step"] > 2  # continued, not restarted
    state = torch.load(root / "runs/blockfill-coder/last.pt", weights_only=False)
    assert all(t.dtype == torch.float32 for t in state["adapter"].values())  # bf16 forwards, fp32 checkpoint
    loaded = load_model(str(package), device="cpu")
    assert loaded.family == "coder" and loaded.adapter.config.base_model == str(base)

    # `blockfill adapt --resume` here: the run's own recipe (its tiny shapes, not the defaults), this machine's device
    steps = history[-1]["step"] + 1
    assert cli.main(["adapt", "--resume", "--set", f"steps={steps}", "--set", "corpus_dir=corpus"]) == 0
    assert json.loads((root / "runs/blockfill-coder/history.json").read_text())[-1]["step"] == steps
    resumed = json.loads((root / "runs/blockfill-coder/train_config.json").read_text())
    assert {key: resumed[key] for key in ("block_size", "rank", "windows", "max_middle_tokens")} == {
        key: TINY[key] for key in ("block_size", "rank", "windows", "max_middle_tokens")
    }
    assert (resumed["base"], resumed["device"]) == (str(base), "auto")
    assert (resumed["eval_every"], resumed["save_every"]) == (3, 1)  # as the lease ran it, not the defaults


def test_a_run_starts_from_a_saved_adapter_and_trains_on_the_plain_file_too(here):
    """`init_from` loads a saved adapter (at lr 0 it comes out unchanged) and refuses one of another shape;
    `plain_share` adds plain-file examples, laid out as the engine's plain continuation reads the file (the FIM
    prompt's start), with held-out agreement of their own."""
    from safetensors.torch import load_file

    from engine.prompt import build_prompt
    from engine.training.coder_train import plain_file

    root, base, _ = here
    first = root / "runs/blockfill-coder/adapter"
    config = CoderTrainConfig(
        out_dir="runs/plain", base=str(base), corpus_dir="corpus", steps=1, **{**TINY, "eval_every": 1},
        lr=0.0, init_from=str(first), plain_share=0.5,
    )  # fmt: skip
    run_coder_training(config)
    saved = load_file(root / "runs/plain/adapter/adapter.safetensors")
    started = load_file(first / "adapter.safetensors")
    assert saved.keys() == started.keys() and all(torch.equal(saved[k], started[k]) for k in saved)
    record = json.loads((root / "runs/plain/history.json").read_text())[-1]
    assert len(record["plain_agreement_by_offset"]) == len(record["agreement_by_offset"]) == TINY["block_size"]
    with pytest.raises(ConfigError, match="cannot start from"):
        run_coder_training(CoderTrainConfig(**{**config.__dict__, "out_dir": "runs/other", "rank": 2}))

    special = load_model(str(base), device="cpu").special
    prefix, rest = [5, 6, 7], [8, 9]
    plain = plain_file(prefix, rest, special)
    fim = build_prompt(prefix, [10], 0, "fim_text", special).input_ids
    assert plain.ids[: plain.middle_start] == fim[: fim.index(special.fim_prefix) + 1 + len(prefix)]
    assert plain.ids[plain.middle_start :] == rest


def test_a_fresh_lease_starts_from_an_adapter_in_the_tree(here, tmp_path, monkeypatch):
    """No run to resume (a fresh checkout has none): the lease's run starts from the adapter that travels with the
    tree (`init_from`, as docs/TRAINING.md plans it with the shipped one), in the recipe's shape given as settings;
    at lr 0 the adapter comes back as it went."""
    from safetensors.torch import load_file

    root, base, pack = here
    shipped = Path("shipped-adapter")  # stands for engine/models/blockfill-coder: tracked, so on the device too
    shutil.copytree(root / "runs/blockfill-coder/adapter", root / shipped)
    (tmp_path / "device/repo").mkdir(parents=True)
    shutil.copytree(root / shipped, tmp_path / "device/repo" / shipped)
    manifest = gpu_lease.stage(str(base), pack, PIECE)
    recipe = tuple(f"{key}={value}" for key, value in TINY.items() if key not in ("device", "threads", "precision"))
    settings = (*DEVICE_SETTINGS, *recipe, f"init_from={shipped}", "lr=0", "steps=2")
    returned = lease_plan.return_estimate(0, (root / shipped / "adapter.safetensors").stat().st_size)
    calls, _ = lease_plan.plan_calls(manifest, 0, returned, minutes=0.02, settings=settings)
    monkeypatch.setenv("BLOCKFILL_GPU_WORK", str(tmp_path / "device/work"))
    gpu_return = root / "runs" / "gpu-return"
    gpu_return.mkdir()
    for call in calls:
        for path in _call(call, root, tmp_path / "device", monkeypatch):
            shutil.copy2(path, gpu_return / path.name)

    gpu_lease.join([gpu_return], root / "runs" / "from-shipped", root / "package")
    history = json.loads((root / "runs/from-shipped/history.json").read_text())
    assert history[0]["step"] == 1  # a new run, not the CPU run of the fixture
    back, sent = load_file(root / "package/adapter.safetensors"), load_file(root / shipped / "adapter.safetensors")
    assert back.keys() == sent.keys() and all(torch.equal(back[k], sent[k]) for k in back)


def test_a_damaged_piece_is_refused_where_it_arrives(here, tmp_path, monkeypatch):
    root, base, pack = here
    manifest = gpu_lease.stage(str(base), pack, PIECE)
    damaged = root / lease_plan.STAGE_DIR / manifest.pieces[1].name
    data = bytearray(damaged.read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    shutil.copytree(root / lease_plan.STAGE_DIR, tmp_path / "repo" / lease_plan.STAGE_DIR)
    monkeypatch.chdir(tmp_path / "repo")
    with pytest.raises(ConfigError, match=rf"piece .*{manifest.pieces[1].name} is damaged"):
        gpu_lease.receive(tmp_path / "work")


def test_a_missing_piece_stops_the_unpack(here, tmp_path, monkeypatch):
    root, base, pack = here
    manifest = gpu_lease.stage(str(base), pack, PIECE)
    (root / lease_plan.STAGE_DIR / manifest.pieces[-1].name).unlink()
    shutil.copytree(root / lease_plan.STAGE_DIR, tmp_path / "repo" / lease_plan.STAGE_DIR)
    monkeypatch.chdir(tmp_path / "repo")
    gpu_lease.receive(tmp_path / "work")
    with pytest.raises(ConfigError, match=rf"piece {manifest.pieces[-1].name} is missing"):
        gpu_lease.unpack(tmp_path / "work")


def test_the_real_base_fits_a_lease_beside_this_checkout():
    """Sizes only: the 491 MB GGUF, a 24 MB corpus pack, 13 MB of wheels and a 106 MB checkpoint, cut for this
    checkout's tree, give calls within every limit and at least a minute of training in 15 minutes."""
    tree = lease_plan.tree_bytes(Path(__file__).parents[1])
    budget = lease_plan.carry_budget(tree)
    total = 491_400_064 + 24_000_000 + 13_000_000 + 105_904_309
    sizes = [budget] * (total // budget) + [total % budget]
    manifest = Manifest(
        "bundle.tar", total, "0" * 64, tuple(Piece(f"bundle.tar.{i:03d}", s, "0") for i, s in enumerate(sizes))
    )
    calls, minutes = lease_plan.plan_calls(manifest, tree, lease_plan.return_estimate(105_904_309, 0))
    assert minutes >= 1
    assert lease_plan.START_S + sum(c.seconds for c in calls) <= lease_plan.LEASE_S - lease_plan.SAFETY_S
    assert all(c.timeout_s <= lease_plan.COMMAND_LIMIT_S and len(c.command) <= lease_plan.COMMAND_CHARS for c in calls)
    with pytest.raises(ConfigError, match="room for"):
        lease_plan.plan_calls(manifest, tree + (8 << 20), 0)


def test_a_staged_gguf_that_is_not_the_catalogs_is_refused_there(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOCKFILL_CACHE", str(tmp_path / "cache"))  # _install_base points it into the work folder
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "base.gguf").write_bytes(b"GGUF but not the one the catalog names")
    with pytest.raises(ConfigError, match="not the catalog's qwen2.5-coder-0.5b"):
        gpu_lease._install_base(tmp_path, "qwen2.5-coder-0.5b")
