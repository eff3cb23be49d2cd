"""Load a checkpoint for inference: "embedded", a local directory, or a hub id (offline-first).

Two model families run behind the one engine: DiffusionGemma block diffusion (the product), and causal LMs that
fill the middle left to right (the same-size baseline of `blockfill train --set objective=ar_fim`, or a small
pretrained model). Every way a load can fail ends in a ModelLoadError whose message says what to do, never a
stack trace.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    DiffusionGemmaForBlockDiffusion,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from engine.errors import ModelLoadError
from engine.prompt import SpecialTokens

EMBEDDED_DIR = Path(__file__).parent / "blockfill-tiny"
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class ModelLimits:
    """Context the checkpoint was trained for; asking for more only degrades it (RoPE positions it never saw)."""

    max_prefix_tokens: int
    max_suffix_tokens: int
    max_canvas: int


@dataclass
class LoadedModel:
    name: str
    model: PreTrainedModel  # DiffusionGemmaForBlockDiffusion, or a causal LM when family == "causal"
    tokenizer: PreTrainedTokenizerBase
    special: SpecialTokens
    layout: str  # FIM layout, see engine.prompt
    limits: ModelLimits
    device: torch.device
    family: str = "block_diffusion"  # or "causal": engine.autoregressive fills the middle left to right


def _family(config) -> str:
    """ "block_diffusion" for DiffusionGemma, "causal" for a *ForCausalLM architecture; anything else is refused."""
    if config.model_type == "diffusion_gemma":
        return "block_diffusion"
    if any(name.endswith("ForCausalLM") for name in getattr(config, "architectures", None) or []):
        return "causal"
    raise ModelLoadError(
        f"a {config.model_type!r} model is neither DiffusionGemma nor a causal LM; blockfill cannot fill with it"
    )


def resolve_device(device: str) -> torch.device:
    """ "auto" picks CUDA where present; an explicit CUDA request on a machine without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for, but torch sees no CUDA GPU; use device=cpu")
    return torch.device(device)


def _check_local_checkpoint(path: Path) -> None:
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{path} is not a model checkpoint: it has no config.json")
    try:
        json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{config_file} is corrupt: {err}") from err
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ModelLoadError(f"{path} is a partial checkpoint: no {' or '.join(_WEIGHT_FILES)} beside config.json")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer.model").is_file():
        raise ModelLoadError(f"{path} is a partial checkpoint: it has no tokenizer (tokenizer.json)")


def load_model(spec: str = "embedded", device: str = "auto", allow_download: bool = False) -> LoadedModel:
    """Load `spec` in fp32 on CPU (bf16 is ~25x slower there) or bf16 on CUDA, in eval mode."""
    target = resolve_device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    local = EMBEDDED_DIR if spec == "embedded" else Path(os.path.expanduser(spec))
    is_local = spec == "embedded" or local.exists() or spec.startswith((".", "/", "~"))
    # A GGUF file (llama.cpp's format) holds a causal LM; transformers dequantizes it (needs `gguf`).
    gguf = {"gguf_file": local.name} if spec.endswith(".gguf") else {}
    if gguf and not local.is_file():
        raise ModelLoadError(f"GGUF file {local} does not exist")
    if is_local and not gguf:
        _check_local_checkpoint(local)
    source = str(local.parent if gguf else local) if is_local else spec
    offline = not allow_download
    options = dict(local_files_only=offline, trust_remote_code=False, **gguf)
    try:
        family = "causal" if gguf else _family(AutoConfig.from_pretrained(source, **options))
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        model_class = DiffusionGemmaForBlockDiffusion if family == "block_diffusion" else AutoModelForCausalLM
        model, info = model_class.from_pretrained(source, dtype=dtype, output_loading_info=True, **options)
    except OSError as err:
        if is_local:
            raise ModelLoadError(f"could not read the checkpoint in {local}: {err}") from err
        raise ModelLoadError(
            f"{spec!r} is neither a local directory nor a model in the local Hugging Face cache. On a machine that "
            f"reaches the hub run `hf download {spec}` (and copy the cache here), or pass the checkpoint's "
            f"directory as the model."
        ) from err
    except ModelLoadError:
        raise
    except ImportError as err:  # GGUF needs optional packages
        raise ModelLoadError(
            f"{spec} needs a package that is not installed ({err}); pip install 'blockfill[gguf]'"
        ) from err
    except Exception as err:  # safetensors and torch raise their own types for truncated or garbled weights
        raise ModelLoadError(f"the weights of {source} are corrupt or do not match its config: {err}") from err
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ModelLoadError(f"{source} is a partial checkpoint: {len(missing)} weights missing, e.g. {missing[0]}")
    config = model.config
    limits = ModelLimits(
        max_prefix_tokens=getattr(config, "blockfill_max_prefix_tokens", 2048),
        max_suffix_tokens=getattr(config, "blockfill_max_suffix_tokens", 1024),
        max_canvas=getattr(config, "blockfill_max_canvas", getattr(config, "canvas_length", 256)),
    )
    return LoadedModel(
        name="blockfill-tiny" if spec == "embedded" else spec,
        model=model.to(target).eval(),
        tokenizer=tokenizer,
        special=SpecialTokens.of(tokenizer),
        layout=getattr(config, "blockfill_fim_layout", "fim_text"),
        limits=limits,
        device=target,
        family=family,
    )
