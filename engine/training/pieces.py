"""One file cut into numbered pieces of at most N bytes with a sha256 manifest, and joined back verified.

A lent GPU takes at most 64 MiB of files a call and gives back at most 16 MiB a file, so the base model, the
corpus and a checkpoint cross in pieces, over several calls, both ways. Every piece is checked on arrival and the
whole again once joined: a damaged or missing piece stops with a one-line error that names it, never a file that
is almost right.
"""

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from engine.errors import ConfigError
from engine.models.fetch import concatenate, sha256_of, stream

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Piece:
    name: str  # "{file}.{index:03d}"
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    file: str  # the name the joined file gets
    size: int
    sha256: str
    pieces: tuple[Piece, ...]

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            fields = json.loads(path.read_text())
            return cls(**{**fields, "pieces": tuple(Piece(**p) for p in fields["pieces"])})
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"{path} is missing or not a pieces manifest: {err}") from err

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def split_file(path: Path, into: Path, piece_bytes: int) -> Manifest:
    """Cut `path` into `into/{name}.000`, `.001`, ... of at most `piece_bytes` each, and write `into/manifest.json`."""
    into.mkdir(parents=True, exist_ok=True)
    pieces = []
    with path.open("rb") as source:
        while True:
            target = into / f"{path.name}.{len(pieces):03d}"
            with target.open("wb") as sink:
                size = stream(source, [sink.write], limit=piece_bytes)
            if size == 0 and pieces:
                target.unlink()
                break
            pieces.append(Piece(target.name, size, sha256_of(target)))
            if size < piece_bytes:
                break
    manifest = Manifest(path.name, path.stat().st_size, sha256_of(path), tuple(pieces))
    manifest.write(into / MANIFEST)
    return manifest


def check_piece(path: Path, piece: Piece) -> None:
    """Raise unless `path` is `piece`, byte for byte (by size and sha256)."""
    if not path.is_file():
        raise ConfigError(f"piece {piece.name} is missing from {path.parent}")
    size = path.stat().st_size
    if size != piece.size or sha256_of(path) != piece.sha256:
        raise ConfigError(
            f"piece {path} is damaged ({size:,} bytes, expected {piece.size:,} with sha256 "
            f"{piece.sha256[:12]}…): send it again"
        )


def join_pieces(manifest: Manifest, folders: list[Path], out: Path) -> Path:
    """`out/{file}` from the pieces found in `folders` (the first folder holding a piece wins), verified."""
    paths = []
    for piece in manifest.pieces:
        found = next((f / piece.name for f in folders if (f / piece.name).is_file()), folders[0] / piece.name)
        check_piece(found, piece)
        paths.append(found)
    out.mkdir(parents=True, exist_ok=True)
    target = out / manifest.file

    def opened() -> Iterator[BinaryIO]:
        for path in paths:
            with path.open("rb") as source:
                yield source

    size, sha256 = concatenate(opened(), target)
    if size != manifest.size or sha256 != manifest.sha256:
        target.unlink()
        raise ConfigError(
            f"the joined {manifest.file} is {size:,} bytes with sha256 {sha256[:12]}…, expected "
            f"{manifest.size:,} with {manifest.sha256[:12]}…: a piece changed after it was checked"
        )
    return target
