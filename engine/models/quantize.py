"""Weight-only int8 / int4 for a DiffusionGemma model, so the 26B-A4B checkpoint fits a 24 GB card (issue 13).

Two kinds of weight, two quantizers:
- nn.Linear layers (attention, dense MLPs, self-conditioning): optimum-quanto's qint8 / qint4, a maintained one
  (the optional extra `blockfill[quantize]`).
- The experts, ~90 % of the bytes. Each layer keeps its experts as two 3-D parameters (`gate_up_proj` [E, 2I, H],
  `down_proj` [E, H, I]). quanto 0.2.7 swaps only nn.Linear / Conv2d / LayerNorm modules, and transformers 5.23
  quantizes 3-D experts only as FP8 (finegrained_fp8) or MXFP4 (gpt-oss), both with CUDA kernels, none of them 4-bit
  integers. So `QuantizedExperts` is written here: group-wise symmetric codes (one scale per `GROUP` input
  features; int4 packed two to a byte), each expert that a token routes to dequantized on the fly. The format is
  plain torch: it runs on a CPU and on any GPU. The cost is one dequantization per hit expert and forward.

Encoder and decoder share every weight. Each weight is quantized once, and the quantized module is shared the same
way, so the model holds one copy. The embedding (tied to lm_head, read twice a step for logits and
self-conditioning) and the routers (a few KB a layer, and they decide which experts run) keep the model's dtype.
"""

import importlib.util
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.diffusion_gemma.modeling_diffusion_gemma import DiffusionGemmaTextExperts

from engine.errors import ConfigError, ModelLoadError

KINDS = {"none": 0, "int8": 8, "int4": 4}  # `--set quantize=...` -> bits (0: the model's own dtype)
GROUP = 64  # input features per scale (the 26B-A4B's 2816 and 704 are multiples): bf16 scales add 2/64 byte a weight
_KEEP = ("lm_head", "router")  # Linear modules that stay unquantized (see the module docstring)


def check_kind(kind: str) -> int:
    """The bits `kind` stands for; a ConfigError names the choices."""
    if kind not in KINDS:
        raise ConfigError(f"quantize must be one of {', '.join(KINDS)}, not {kind!r}")
    return KINDS[kind]


def quantize_groups(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., O, In] float -> codes ([..., O, In] int8; int4: [..., O, In // 2] uint8, low nibble first) and
    scales [..., O, In // group, 1] in the weight's dtype, group = gcd(In, GROUP) inputs (the scales' shape says it).
    Symmetric: code = round(w / scale), scale = absmax of the group / limit.
    """
    *lead, rows, width = weight.shape
    group = math.gcd(width, GROUP)
    limit = 2 ** (bits - 1) - 1  # 127 or 7
    groups = weight.float().reshape(*lead, rows, width // group, group)  # [..., O, In/g, g]
    scales = groups.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / limit
    codes = (groups / scales).round_().clamp_(-limit, limit).to(torch.int8).reshape(*lead, rows, width)
    if bits == 4:
        nibbles = (codes + 8).to(torch.uint8)  # 1..15
        codes = nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)  # [..., O, In/2]
    return codes, scales.to(weight.dtype)


def dequantize_groups(codes: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    """The inverse of `quantize_groups`: [..., O, In] in the scales' dtype."""
    if bits == 4:
        nibbles = torch.stack((codes & 0xF, codes >> 4), dim=-1).flatten(-2)  # [..., O, In]
        codes = nibbles.to(torch.int8) - 8
    *lead, rows, width = codes.shape
    groups = codes.reshape(*lead, rows, scales.shape[-2], -1).to(scales.dtype) * scales  # [..., O, In/g, g]
    return groups.reshape(*lead, rows, width)


class QuantizedExperts(nn.Module):
    """Drop-in for DiffusionGemmaTextExperts: the same routing loop, each hit expert's weights dequantized when used.

    Quantized one expert at a time, so the float temporaries stay one expert's size (the model may already fill
    the GPU when this runs).
    """

    def __init__(self, experts: DiffusionGemmaTextExperts, bits: int):
        super().__init__()
        self.num_experts, self.bits, self.act_fn = experts.num_experts, bits, experts.act_fn
        for name in ("gate_up_proj", "down_proj"):
            weight = getattr(experts, name).data  # [E, O, In]
            parts = [quantize_groups(weight[e], bits) for e in range(self.num_experts)]
            self.register_buffer(f"{name}_codes", torch.stack([codes for codes, _ in parts]))  # [E, O, In or In/2]
            self.register_buffer(f"{name}_scales", torch.stack([scales for _, scales in parts]))  # [E, O, In/G, 1]

    def expert(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert `index`'s gate_up [2I, H] and down [H, I] weights in the model's dtype."""
        gate_up = dequantize_groups(self.gate_up_proj_codes[index], self.gate_up_proj_scales[index], self.bits)
        down = dequantize_groups(self.down_proj_codes[index], self.down_proj_scales[index], self.bits)
        return gate_up, down

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor):
        # hidden_states: [T, H]; top_k_index, top_k_weights: [T, K] -> [T, H]
        out = torch.zeros_like(hidden_states)
        hit = top_k_index.unique().tolist()  # host sync: which experts this forward needs
        for index in hit:
            token, slot = torch.where(top_k_index == index)  # [n], [n]
            gate_up, down = self.expert(index)
            gate, up = F.linear(hidden_states[token], gate_up).chunk(2, dim=-1)  # [n, I] each
            hidden = F.linear(self.act_fn(gate) * up, down) * top_k_weights[token, slot, None]  # [n, H]
            out.index_add_(0, token, hidden.to(out.dtype))
        return out


def quantize_model(model: nn.Module, kind: str) -> nn.Module:
    """Quantize `model`'s weights in place (see the module docstring); "none" leaves it as it is."""
    bits = check_kind(kind)
    if not bits:
        return model
    if importlib.util.find_spec("optimum.quanto") is None:
        raise ModelLoadError(
            f"quantize={kind} needs optimum-quanto: pip install 'blockfill[quantize]' (or quantize=none)"
        )
    _quantize_experts(model, bits)
    _quantize_linears(model, bits)
    return model


def _shared_owners(model: nn.Module, kind: type[nn.Module], key: str) -> tuple[dict[str, str], list[str]]:
    """Every module of `kind` by name -> the name of the first module holding the same `key` parameter, and the
    owners (first holders) in order. Encoder and decoder layers hold the same parameters in different modules."""
    first: dict[int, str] = {}
    owner_of = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, kind):
            owner_of[name] = first.setdefault(id(getattr(module, key)), name)
    return owner_of, list(first.values())


def _quantize_experts(model: nn.Module, bits: int) -> None:
    owner_of, owners = _shared_owners(model, DiffusionGemmaTextExperts, "gate_up_proj")
    quantized = {}
    for owner in owners:
        quantized[owner] = QuantizedExperts(model.get_submodule(owner), bits)
        model.set_submodule(owner, quantized[owner])  # the bf16 tensors can go before the next layer's are copied
    for name, owner in owner_of.items():
        model.set_submodule(name, quantized[owner])


def _quantize_linears(model: nn.Module, bits: int) -> None:
    from optimum.quanto import freeze, qint4, qint8
    from optimum.quanto import quantize as quanto_quantize

    owner_of, owners = _shared_owners(model, nn.Linear, "weight")
    owners = [name for name in owners if not any(part in name for part in _KEEP)]
    quanto_quantize(model, weights={8: qint8, 4: qint4}[bits], include=owners)
    freeze(model)
    for name, owner in owner_of.items():
        if name != owner and owner in owners:
            model.set_submodule(name, model.get_submodule(owner))


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of the model's unique parameters and buffers by dtype, a quantized tensor by what it stores."""
    seen: set[int] = set()
    totals: dict[str, int] = {}

    def count(tensor: torch.Tensor) -> None:
        if hasattr(tensor, "__tensor_flatten__"):  # quanto's tensor subclasses: codes, scales, shifts inside
            for inner in tensor.__tensor_flatten__()[0]:
                count(getattr(tensor, inner))
        elif id(tensor) not in seen:
            seen.add(id(tensor))
            name = str(tensor.dtype).removeprefix("torch.")
            totals[name] = totals.get(name, 0) + tensor.numel() * tensor.element_size()

    for tensor in [*model.parameters(), *model.buffers()]:
        count(tensor)
    return totals
