"""Load a checkpoint for inference: a catalog name, a local directory, a GGUF file, or a hub id (offline-first).

Five model families run behind the one engine: DiffusionGemma block diffusion; the public diffusion code models on
Qwen2 / Qwen3 graphs, masked (Dream, Dream-Coder, DiffuCoder, Open-dCoder) or block diffusion (SDAR, Fast-dLLM v2),
loaded natively (engine.models.layouts, never their own Python); causal LMs that fill the middle left to right (a
pretrained code model such as qwen2.5-coder-0.5b, or the same-size baseline of `blockfill train --set
objective=ar_fim`); and blockfill-coder, a causal code LM with a drafting adapter (engine.coder). Every way a load
can fail ends in a ModelLoadError whose message says what to do, never a stack trace.
"""

import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
from transformers.utils import logging as transformers_logging

from engine.errors import ModelLoadError
from engine.models.catalog import CatalogEntry, installed_dir, is_installed, lookup
from engine.models.gated_lora import ADAPTER_CONFIG, AdapterConfig, DraftingAdapter
from engine.models.layouts import (
    DiffusionLayout,
    diffusion_layout,
    edit_token_ids,
    graph_class,
    load_tokenizer,
    mask_token_id,
    qwen_config,
    read_config,
)
from engine.models.quantize import DYNAMIC_INT8, check_kind, quantize_causal, quantize_model
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
    model: PreTrainedModel  # DiffusionGemmaForBlockDiffusion, or a Qwen2 / Qwen3 / causal LM graph
    tokenizer: PreTrainedTokenizerBase
    special: SpecialTokens
    layout: str  # FIM layout, see engine.prompt
    limits: ModelLimits
    device: torch.device
    family: str = "diffusion_gemma"  # or "masked_diffusion", "block_diffusion" (engine.families), "causal" (left
    # to right) or "coder" (drafting adapter): engine.coder decodes those two
    adapter: DraftingAdapter | None = None  # the coder family's trainable parts, wrapped into `model`
    diffusion: DiffusionLayout | None = None  # the public diffusion checkpoint's layout (masked / block families)
    mask_token_id: int | None = None  # their mask token, from the checkpoint's config or tokenizer
    edit_tokens: tuple[int, int] | None = None  # DreamOn's (expand, delete) ids, from its tokenizer


def resolve(spec: str) -> tuple[str, str]:
    """(family, what it is) for `spec` without loading weights: what `blockfill models list SPEC` shows."""
    entry = lookup(spec)
    if entry is not None:
        return entry.family, entry.source
    local = Path(os.path.expanduser(spec))
    if (local / ADAPTER_CONFIG).is_file():
        return "coder", f"a drafting adapter over {AdapterConfig.read(local).base_model}"
    if local.is_file() and local.suffix == ".gguf" or local.is_dir() and _single_gguf(local) is not None:
        return "causal", "a GGUF causal LM"
    _check_local_checkpoint(local)
    config = read_config(local)
    layout = _layout(local, config)
    if layout is not None:
        return layout.family, f"{layout.name} layout on transformers' {'Qwen3' if layout.qwen3 else 'Qwen2'} graph"
    if config.get("model_type") == "diffusion_gemma":
        return "diffusion_gemma", "a DiffusionGemma checkpoint"
    return "causal", f"a {config.get('model_type')!r} causal LM"


def _layout(local: Path, config: dict) -> DiffusionLayout | None:
    """The diffusion layout of a local checkpoint (Open-dCoder is told from a Qwen2 LM by its tokenizer's mask)."""
    if "auto_map" not in config and config.get("model_type") not in ("Dream", "sdar", "Fast_dLLM_Qwen"):
        return None
    tokenizer = load_tokenizer(local)
    return diffusion_layout(config, mask_token_id(config, tokenizer) is not None, edit_token_ids(tokenizer) is not None)


def _family(config) -> str:
    """ "diffusion_gemma" for DiffusionGemma, "causal" for a *ForCausalLM architecture; anything else is refused."""
    if config.model_type == "diffusion_gemma":
        return "diffusion_gemma"
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
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "merges.txt")
    if not any((path / name).is_file() for name in tokenizer_files):
        raise ModelLoadError(f"{path} is a partial checkpoint: it has no tokenizer (tokenizer.json)")


def _catalog_source(entry: CatalogEntry) -> Path:
    """The directory a catalog name loads from; a base that is not fetched yet says which command fetches it."""
    if entry.adapter is not None:
        base = lookup(entry.base or "")
        if base is not None:
            _catalog_source(base)  # its own message when the base is not fetched
        if not (entry.adapter / ADAPTER_CONFIG).is_file():
            raise ModelLoadError(f"{entry.name}'s adapter is missing from the package ({entry.adapter})")
        return entry.adapter
    if entry.parts is None:
        return EMBEDDED_DIR
    if not is_installed(entry):
        raise ModelLoadError(f"{entry.name} is not installed; fetch it with `blockfill models fetch {entry.name}`")
    return installed_dir(entry)


def _single_gguf(directory: Path) -> Path | None:
    """A directory without config.json that holds exactly one GGUF file stands for that file."""
    if (directory / "config.json").exists():
        return None
    found = sorted(directory.glob("*.gguf"))
    return found[0] if len(found) == 1 else None


def _check_gguf_support(spec: str) -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelLoadError(
            f"{spec} is a GGUF file, which needs {' and '.join(missing)}: pip install {' '.join(missing)}"
        )


@contextmanager
def _without_weight_bars(quiet: bool) -> Iterator[None]:
    """transformers draws a "Loading weights" bar for every load. Read from disk (or the local cache) it lasts a
    second and was the first thing `blockfill infill` and a language server's log showed; a download keeps its bar."""
    shown = transformers_logging.is_progress_bar_enabled()
    if quiet and shown:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and shown:
            transformers_logging.enable_progress_bar()


def load_model(
    spec: str = "blockfill-tiny", device: str = "auto", allow_download: bool = False, quantize: str = "none"
) -> LoadedModel:
    """Load `spec` in fp32 on CPU (bf16 is ~25x slower there) or bf16 on CUDA, in eval mode.

    `quantize` ("int8", "int4"): a DiffusionGemma's weights quantized (engine.models.quantize) before they move
    to the device, so the device holds only the quantized copy; "int8-dynamic": a causal LM's (and
    blockfill-coder's) on the CPU.
    """
    check_kind(quantize)
    entry = lookup(spec)
    local = _catalog_source(entry) if entry is not None else Path(os.path.expanduser(spec))
    name = spec if entry is None else entry.name
    if quantize == DYNAMIC_INT8:
        refusal = f"quantize={quantize} applies to causal models on the CPU, not to {spec}"
        if resolve_device(device).type != "cpu":  # refused before the weights are read
            raise ModelLoadError(f"{refusal} on {device}")
        loaded = load_model(spec, device, allow_download)
        if loaded.family not in ("causal", "coder"):
            raise ModelLoadError(refusal)
        quantize_causal(loaded.model)
        return loaded
    if (local / ADAPTER_CONFIG).is_file():
        if quantize != "none":
            raise ModelLoadError(f"quantize={quantize} applies to DiffusionGemma checkpoints, not to {spec}")
        return _load_coder(name, local, device)
    return _load_checkpoint(name, local, entry is not None, device, allow_download, quantize)


def _load_coder(name: str, directory: Path, device: str) -> LoadedModel:
    """A drafting adapter over its base: the base loads as a causal LM, then the adapter is wrapped into it."""
    config = AdapterConfig.read(directory)
    base_entry = lookup(config.base_model)
    base_dir = _catalog_source(base_entry) if base_entry is not None else Path(os.path.expanduser(config.base_model))
    loaded = _load_checkpoint(config.base_model, base_dir, True, device, allow_download=False)
    if loaded.family != "causal":
        raise ModelLoadError(f"the base of {directory} ({config.base_model}) is not a causal LM")
    adapter = DraftingAdapter(loaded.model, config)
    adapter.load(directory)
    adapter.to(loaded.device)
    loaded.name, loaded.family, loaded.adapter = name, "coder", adapter
    return loaded


def _load_checkpoint(
    spec: str, local: Path, is_local: bool, device: str, allow_download: bool, quantize: str = "none"
) -> LoadedModel:
    target = resolve_device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    is_local = is_local or local.exists() or spec.startswith((".", "/", "~"))
    if local.is_dir() and (gguf_in_dir := _single_gguf(local)) is not None:
        local = gguf_in_dir
    # A GGUF file (llama.cpp's format) holds a causal LM; transformers dequantizes it (needs `gguf`).
    gguf = {"gguf_file": local.name} if local.name.endswith(".gguf") else {}
    if gguf and not local.is_file():
        raise ModelLoadError(f"GGUF file {local} does not exist")
    if gguf:
        _check_gguf_support(str(local))
    if is_local and not gguf:
        _check_local_checkpoint(local)
        config = read_config(local)
        if (layout := _layout(local, config)) is not None:
            return _load_diffusion(spec, local, config, layout, target, dtype)
    source = str(local.parent if gguf else local) if is_local else spec
    offline = not allow_download
    options = dict(local_files_only=offline, trust_remote_code=False, **gguf)
    try:
        with _without_weight_bars(is_local or offline):
            family = "causal" if gguf else _family(AutoConfig.from_pretrained(source, **options))
            tokenizer = AutoTokenizer.from_pretrained(source, **options)
            model_class = DiffusionGemmaForBlockDiffusion if family == "diffusion_gemma" else AutoModelForCausalLM
            model, info = model_class.from_pretrained(source, dtype=dtype, output_loading_info=True, **options)
    except OSError as err:
        if is_local:
            raise ModelLoadError(f"could not read the checkpoint in {local}: {err}") from err
        raise ModelLoadError(
            f"{spec!r} is neither a model blockfill knows (`blockfill models list`), a local directory, nor a model "
            f"in the local Hugging Face cache. On a machine that reaches the hub run `hf download {spec}` (and copy "
            f"the cache here), or pass the checkpoint's directory as the model."
        ) from err
    except ModelLoadError:
        raise
    except ImportError as err:  # GGUF needs optional packages
        raise ModelLoadError(
            f"{spec} needs a package that is not installed ({err}); pip install gguf accelerate"
        ) from err
    except Exception as err:  # safetensors and torch raise their own types for truncated or garbled weights
        raise ModelLoadError(f"the weights of {source} are corrupt or do not match its config: {err}") from err
    _check_complete(source, info)
    if quantize != "none":
        if family != "diffusion_gemma":
            raise ModelLoadError(f"quantize={quantize} applies to DiffusionGemma checkpoints, not to {spec}")
        quantize_model(model, quantize, target)
    return _loaded(spec, model, tokenizer, target, family)


def _check_complete(source: str, info: dict) -> None:
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ModelLoadError(f"{source} is a partial checkpoint: {len(missing)} weights missing, e.g. {missing[0]}")


def _loaded(spec: str, model: PreTrainedModel, tokenizer, target: torch.device, family: str, **extra) -> LoadedModel:
    config = model.config
    limits = ModelLimits(
        max_prefix_tokens=getattr(config, "blockfill_max_prefix_tokens", 2048),
        max_suffix_tokens=getattr(config, "blockfill_max_suffix_tokens", 1024),
        max_canvas=getattr(config, "blockfill_max_canvas", getattr(config, "canvas_length", 256)),
    )
    layout = extra["diffusion"].fim_layout if extra.get("diffusion") else "fim_text"
    return LoadedModel(
        name=spec,
        model=model.to(target).eval(),
        tokenizer=tokenizer,
        special=SpecialTokens.of(tokenizer),
        layout=getattr(config, "blockfill_fim_layout", layout),
        limits=limits,
        device=target,
        family=family,
        **extra,
    )


def _load_diffusion(
    spec: str, local: Path, config: dict, layout: DiffusionLayout, target: torch.device, dtype: torch.dtype
) -> LoadedModel:
    """A public diffusion checkpoint onto transformers' Qwen2 / Qwen3 graph (its auto_map is never followed)."""
    tokenizer = load_tokenizer(local)
    mask = mask_token_id(config, tokenizer)
    if mask is None or not 0 <= mask < config.get("vocab_size", 0):
        raise ModelLoadError(f"{local} is a {layout.name} checkpoint without a usable mask token ({mask!r})")
    try:
        with _without_weight_bars(True):
            model, info = graph_class(layout).from_pretrained(
                str(local),
                config=qwen_config(config, layout),
                dtype=dtype,
                output_loading_info=True,
                local_files_only=True,
            )
    except Exception as err:  # safetensors and torch raise their own types for truncated or garbled weights
        raise ModelLoadError(f"the weights of {local} are corrupt or do not match its config: {err}") from err
    _check_complete(str(local), info)
    edits = edit_token_ids(tokenizer) if layout.variable_length else None
    return _loaded(
        spec, model, tokenizer, target, layout.family, diffusion=layout, mask_token_id=mask, edit_tokens=edits
    )
