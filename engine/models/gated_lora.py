"""Low-rank adapters that act only on the tokens a per-token gate selects: blockfill-coder's trainable part.

blockfill-coder drafts a block of masked positions on a pretrained causal LM. The adapter must change how the
model reads the masked positions without changing anything it computes for real tokens: then the KV cache of the
prompt and of every settled token is exactly the base model's, the leftmost open position is predicted exactly
as the base would predict it, and an untrained (zero) or poor adapter can cost speed but never quality. peft's
LoRA applies to every token of a forward, so this is the one part written here: a LoRA delta multiplied by a
[B, T, 1] gate that is 1 on masked positions and 0 elsewhere, set for the duration of one forward.
"""

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from engine.errors import ModelLoadError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class AdapterConfig:
    """What `adapter_config.json` holds: the block-diffusion fields public checkpoints use, and the LoRA shape."""

    base_model: str  # catalog name of the base, e.g. "qwen2.5-coder-0.5b"
    block_size: int  # masked positions drafted per step
    mask_token_id: int  # token id written where a position is masked (its embedding is replaced by mask_embedding)
    rank: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = TARGET_MODULES
    model_type: str = "blockfill_coder"

    @classmethod
    def read(cls, directory: Path) -> "AdapterConfig":
        path = directory / ADAPTER_CONFIG
        try:
            fields = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelLoadError(f"{path} is missing or corrupt: {err}") from err
        if fields.get("model_type") != "blockfill_coder":
            raise ModelLoadError(f"{path} is not a blockfill-coder adapter (model_type {fields.get('model_type')!r})")
        try:
            return cls(**{**fields, "target_modules": tuple(fields.get("target_modules", TARGET_MODULES))})
        except TypeError as err:
            raise ModelLoadError(f"{path} has unexpected fields: {err}") from err


class TokenGate:
    """The gate shared by every adapted layer of one model: None (adapter off) or [B, T, 1] float."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    @contextmanager
    def open_on(self, gate: torch.Tensor | None) -> Iterator[None]:
        self.value = gate
        try:
            yield
        finally:
            self.value = None


class GatedLoRALinear(nn.Module):
    """`base(x) + gate * scale * B(A(x))`: the base layer untouched, the delta only where the gate is open."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, gate: TokenGate):
        super().__init__()
        self.base, self.gate, self.scale = base, gate, alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=base.weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype))  # zero: a no-op
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.gate.value is None:
            return out
        return out + (x @ self.lora_a.T @ self.lora_b.T) * (self.scale * self.gate.value)


class DraftingAdapter(nn.Module):
    """The trainable parts added to a causal LM: gated LoRA in its linear layers and the mask embedding."""

    def __init__(self, lm: nn.Module, config: AdapterConfig):
        super().__init__()
        self.config, self.gate = config, TokenGate()
        embed = lm.get_input_embeddings().weight
        self.mask_embedding = nn.Parameter(embed[config.mask_token_id].detach().clone())  # [H]
        self.layers = nn.ModuleDict()
        for name, module in list(lm.named_modules()):
            for child_name, child in list(module.named_children()):
                if child_name in config.target_modules and isinstance(child, nn.Linear):
                    wrapped = GatedLoRALinear(child, config.rank, config.alpha, self.gate)
                    setattr(module, child_name, wrapped)
                    self.layers[f"{name}.{child_name}".replace(".", "__")] = wrapped
        for parameter in lm.parameters():
            parameter.requires_grad_(False)
        for parameter in self.trainable_parameters():
            parameter.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.mask_embedding] + [p for layer in self.layers.values() for p in (layer.lora_a, layer.lora_b)]

    def state(self) -> dict[str, torch.Tensor]:
        tensors = {"mask_embedding": self.mask_embedding}
        for key, layer in self.layers.items():
            tensors[f"{key}.lora_a"], tensors[f"{key}.lora_b"] = layer.lora_a, layer.lora_b
        return {k: v.detach() for k, v in tensors.items()}

    def save(self, directory: Path) -> None:
        """Write the adapter (fp16 weights: it ships in the repository) and its config."""
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.to(torch.float16).contiguous() for k, v in self.state().items()}, directory / ADAPTER_WEIGHTS)
        fields = asdict(self.config)
        fields["target_modules"] = list(self.config.target_modules)
        (directory / ADAPTER_CONFIG).write_text(json.dumps(fields, indent=2) + "\n")

    def load(self, directory: Path) -> None:
        path = directory / ADAPTER_WEIGHTS
        try:
            tensors = load_file(path)
        except Exception as err:  # safetensors raises its own type for a truncated file
            raise ModelLoadError(f"the adapter weights {path} are missing or corrupt: {err}") from err
        own = self.state()
        if set(tensors) != set(own) or any(tensors[k].shape != own[k].shape for k in own):
            raise ModelLoadError(f"{path} does not fit this base model (other layers, rank or width)")
        self.load_state(tensors)

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy `state()`-shaped tensors into the trainable parts."""
        with torch.no_grad():
            self.mask_embedding.copy_(tensors["mask_embedding"])
            for key, layer in self.layers.items():
                layer.lora_a.copy_(tensors[f"{key}.lora_a"])
                layer.lora_b.copy_(tensors[f"{key}.lora_b"])
