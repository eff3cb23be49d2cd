"""Tiny checkpoints of the public diffusion code models, written exactly as their hub directories are laid out:
config fields, tensor names (Qwen2 / Qwen3 module names), tokenizer files, and the model's own Python beside them,
which blockfill must never import (importing it writes `IMPORTED` and raises).

- dream (Dream, Dream-Coder, DiffuCoder): `model_type: "Dream"`, `auto_map` to `modeling_dream`, `mask_token_id`;
  a Qwen2 graph; vocab.json + merges.txt under its own `DreamTokenizer` class, no tokenizer.json; `<|mask|>`.
- dreamon (DreamOn): Dream's layout with `<|expand|>` and `<|delete|>` added to the tokenizer.
- open-dcoder: `model_type: "qwen2"` with `auto_map` to its own `modeling_qwen2.py`; tokenizer.json with `<M>`
  added as the mask token.
- sdar: `model_type: "sdar"`, `block_size`, `mask_token_id`, `auto_map`; a Qwen3 graph; `<|MASK|>`.
- fast-dllm-v2: `model_type: "Fast_dLLM_Qwen"`, `bd_size`, `auto_map`; a Qwen2 graph; `|<MASK>|` in the vocabulary.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"]
LAYOUTS = {
    "dream": {"mask": "<|mask|>", "graph": "qwen2", "python": ["configuration_dream.py", "modeling_dream.py"]},
    "dreamon": {"mask": "<|mask|>", "graph": "qwen2", "python": ["configuration_dream.py", "modeling_dream.py"]},
    "open-dcoder": {"mask": "<M>", "graph": "qwen2", "python": ["modeling_qwen2.py"]},
    "sdar": {"mask": "<|MASK|>", "graph": "qwen3", "python": ["configuration_sdar.py", "modeling_sdar.py"]},
    "fast-dllm-v2": {"mask": "|<MASK>|", "graph": "qwen2", "python": ["configuration.py", "modeling.py"]},
}
_AUTO_MAP = {
    "dream": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    "dreamon": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    "open-dcoder": {"AutoModelForCausalLM": "modeling_qwen2.Qwen2ForCausalLM"},
    "sdar": {
        "AutoConfig": "configuration_sdar.SDARConfig",
        "AutoModel": "modeling_sdar.SDARModel",
        "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM",
    },
    "fast-dllm-v2": {
        "AutoConfig": "configuration.Fast_dLLM_QwenConfig",
        "AutoModelForCausalLM": "modeling.Fast_dLLM_QwenForCausalLM",
    },
}
# DreamOn's added tokens, after the mask token
EDITS = {"dreamon": ["<|expand|>", "<|delete|>"]}
# head_dim as the public checkpoints have it, hidden_size / heads (Qwen3Config would default it to 128)
_SIZE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 16}


def _added(layout: str) -> list[str]:
    """The special tokens of `layout`'s tokenizer, in id order."""
    return [*SPECIALS, LAYOUTS[layout]["mask"], *EDITS.get(layout, [])]


def _tokenizer(texts: list[str], layout: str) -> Tokenizer:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=_added(layout),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return core


def _write_tokenizer(core: Tokenizer, layout: str, directory: Path) -> None:
    mask = LAYOUTS[layout]["mask"]
    vocab = core.get_vocab()
    added = {str(vocab[t]): {"content": t, "special": True} for t in _added(layout)}
    settings = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "added_tokens_decoder": added}
    if layout in ("dream", "dreamon"):  # Dream ships a slow BPE tokenizer with its own class, and no tokenizer.json
        core.model.save(str(directory))
        settings |= {
            "tokenizer_class": "DreamTokenizer",
            "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
            "mask_token": mask,
        }
        (directory / "tokenization_dream.py").write_text(_TRAP)
        (directory / "special_tokens_map.json").write_text(
            json.dumps({"eos_token": "<|endoftext|>", "mask_token": mask})
        )
    else:
        core.save(str(directory / "tokenizer.json"))
        settings |= {"tokenizer_class": "Qwen2TokenizerFast"}
        if layout == "open-dcoder":
            settings["mask_token"] = mask  # added by its training script: `add_special_tokens({"mask_token": "<M>"})`
    (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2))


_TRAP = """from pathlib import Path
(Path(__file__).parent / "IMPORTED").write_text(__name__)
raise ImportError("checkpoint code")
"""


def write_checkpoint(directory: Path, layout: str, texts: list[str], block_size: int = 4, model=None) -> Path:
    """A random (or the given) tiny model in `layout`'s public directory layout, with a tokenizer learned on
    `texts`; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = LAYOUTS[layout]
    core = _tokenizer(texts, layout)
    _write_tokenizer(core, layout, directory)
    vocab, mask_id, eos = core.get_vocab_size(), core.token_to_id(spec["mask"]), core.token_to_id("<|endoftext|>")
    qwen3 = spec["graph"] == "qwen3"
    if model is None:
        torch.manual_seed(0)
        config_class, model_class = (Qwen3Config, Qwen3ForCausalLM) if qwen3 else (Qwen2Config, Qwen2ForCausalLM)
        model = model_class(config_class(vocab_size=vocab, num_key_value_heads=2, tie_word_embeddings=False, **_SIZE))
    model.save_pretrained(str(directory))  # model.safetensors under the Qwen2 / Qwen3 module names
    config = json.loads((directory / "config.json").read_text())
    config |= {"auto_map": _AUTO_MAP[layout], "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos}
    if layout in ("dream", "dreamon"):
        config |= {"model_type": "Dream", "architectures": ["DreamModel"], "mask_token_id": mask_id}
    elif layout == "open-dcoder":
        config |= {"architectures": ["Qwen2ForCausalLM"]}
    elif layout == "sdar":
        config |= {"model_type": "sdar", "architectures": ["SDARForCausalLM"], "block_size": block_size}
        config["mask_token_id"] = mask_id
    else:
        config |= {"model_type": "Fast_dLLM_Qwen", "architectures": ["Fast_dLLM_QwenForCausalLM"]}
        config["bd_size"] = block_size
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    for name in spec["python"]:
        (directory / name).write_text(_TRAP)
    return directory


def save_trained(directory: Path, model: torch.nn.Module, canvas: int) -> Path:
    """Write a model trained in the test over its checkpoint's weights, under the public tensor names; it was
    trained on one canvas size, so an editor's canvas is capped to it."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    config = json.loads((directory / "config.json").read_text())
    config["blockfill_max_canvas"] = canvas
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory
