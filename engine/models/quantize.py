"""Quantized weights: int8 / int4 for a DiffusionGemma model, so the 26B-A4B checkpoint fits a 24 GB card (issue 13),
and dynamic int8 for a causal code LM on the CPU, where it is faster (issue 12; at the end of this module).

Every nn.Linear (attention, dense MLPs, self-conditioning) and every layer's experts, ~90 % of the bytes, are
stored as group-wise symmetric codes (one scale per `GROUP` input features; int4 packed two to a byte) and
dequantized when used: an expert only when a token routes to it. Plain torch: a CPU and any GPU run it. The cost is
one dequantization per weight and forward; a fused int4 kernel would save it, at the price of a CUDA-only path.

Why not a maintained quantizer (checked against optimum-quanto 0.2.7 and transformers 5.23 on torch 2.13):
- The experts are two 3-D parameters a layer (`gate_up_proj` [E, 2I, H], `down_proj` [E, H, I]). quanto swaps only
  nn.Linear / Conv2d / LayerNorm modules, so it leaves them in bf16; transformers quantizes 3-D experts only as FP8
  (finegrained_fp8) or MXFP4 (gpt-oss), with CUDA kernels, and not as 4-bit integers.
- For the Linear layers quanto would do, but its qint4 weights fail under `torch.inference_mode` (the engine's
  mode: "Cannot set version_counter for inference tensor"), and one format for both kinds keeps one code path.

Encoder and decoder share every weight. Each weight is quantized once and the quantized module is shared the same
way, so the model holds one copy. The embedding (tied to lm_head, read twice a step for logits and
self-conditioning) and the routers (a few KB a layer, and they decide which experts run) keep the model's dtype.
"""

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.diffusion_gemma.modeling_diffusion_gemma import DiffusionGemmaTextExperts

from engine.errors import ConfigError

KINDS = {"none": 0, "int8": 8, "int4": 4}  # DiffusionGemma's `--set quantize=...` -> bits (0: the model's own dtype)
DYNAMIC_INT8 = "int8-dynamic"  # a causal LM's `--set quantize=...` (quantize_causal)
GROUP = 64  # input features per scale (the 26B-A4B's 2816 and 704 are multiples): bf16 scales add 2/64 byte a weight
_CHUNK = 8  # experts quantized at once: 8 of the 26B-A4B's gate_up_proj are 0.13 GB of fp32 temporaries
_KEEP = ("lm_head", "router")  # Linear modules that stay unquantized (see the module docstring)


def check_kind(kind: str) -> int:
    """The bits `kind` stands for (8 for int8-dynamic); a ConfigError names the choices."""
    if kind == DYNAMIC_INT8:
        return 8
    if kind not in KINDS:
        raise ConfigError(f"quantize must be one of {', '.join([*KINDS, DYNAMIC_INT8])}, not {kind!r}")
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

    Quantized `_CHUNK` experts at a time, so the float temporaries stay small beside a model that may already fill
    the GPU when this runs.
    """

    def __init__(self, experts: DiffusionGemmaTextExperts, bits: int, device: torch.device | None = None):
        super().__init__()
        self.num_experts, self.bits, self.act_fn = experts.num_experts, bits, experts.act_fn
        for name in ("gate_up_proj", "down_proj"):
            weight = getattr(experts, name).data  # [E, O, In]
            parts = [quantize_groups(chunk.to(device), bits) for chunk in weight.split(_CHUNK)]
            self.register_buffer(f"{name}_codes", torch.cat([codes for codes, _ in parts]))  # [E, O, In or In/2]
            self.register_buffer(f"{name}_scales", torch.cat([scales for _, scales in parts]))  # [E, O, In/g, 1]

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


class QuantizedLinear(nn.Module):
    """Drop-in for nn.Linear: the weight as group-wise codes, dequantized at each call."""

    def __init__(self, linear: nn.Linear, bits: int, device: torch.device | None = None):
        super().__init__()
        self.bits, self.in_features, self.out_features = bits, linear.in_features, linear.out_features
        codes, scales = quantize_groups(linear.weight.data.to(device), bits)
        self.register_buffer("codes", codes)  # [O, In or In/2]
        self.register_buffer("scales", scales)  # [O, In/g, 1]
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_groups(self.codes, self.scales, self.bits), self.bias)


def quantize_model(model: nn.Module, kind: str, device: torch.device | None = None) -> nn.Module:
    """Quantize `model`'s weights in place (see the module docstring); "none" leaves it as it is.

    `device`: where the weights are quantized and stay (a GPU does it in seconds; the rest of the model is the
    caller's to move). None: where they are.
    """
    check_kind(kind)
    if kind not in KINDS:
        raise ConfigError(f"quantize={kind} is for causal models (quantize_causal), not DiffusionGemma")
    if bits := KINDS[kind]:
        _replace_shared(model, DiffusionGemmaTextExperts, "gate_up_proj", lambda m: QuantizedExperts(m, bits, device))
        _replace_shared(model, nn.Linear, "weight", lambda m: QuantizedLinear(m, bits, device))
    return model


def _replace_shared(model: nn.Module, kind: type[nn.Module], key: str, make) -> None:
    """Replace every module of `kind` by `make(module)`, once per `key` parameter: encoder and decoder layers hold
    the same parameters in different modules, and then hold the same replacement."""
    owner_of: dict[int, str] = {}
    replaced: dict[str, nn.Module] = {}
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if not isinstance(module, kind) or any(part in name for part in _KEEP):
            continue
        owner = owner_of.setdefault(id(getattr(module, key)), name)
        if owner == name:
            replaced[name] = make(module)
        model.set_submodule(name, replaced[owner])  # the original's tensors go before the next layer's are copied


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of the model's unique parameters and buffers by dtype (meta tensors count as if they were real)."""
    seen: set[int] = set()
    totals: dict[str, int] = {}

    def count(tensor: torch.Tensor) -> None:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            name = str(tensor.dtype).removeprefix("torch.")
            totals[name] = totals.get(name, 0) + tensor.numel() * tensor.element_size()

    for tensor in [*model.parameters(), *model.buffers()]:
        count(tensor)
    return totals


CAUSAL_KEEP_FP32 = ("lm_head", "down_proj")  # a causal LM's Linear modules that stay fp32 (quantize_causal)


def quantize_causal(model: nn.Module, keep: tuple[str, ...] = CAUSAL_KEEP_FP32) -> nn.Module:
    """A causal LM's Linear layers, but for those named with a part in `keep`, swapped in place for torch's dynamic
    int8 ones.

    Why: on a CPU a 0.5B model in fp32 is bound by reading its 2 GB of weights each forward; int8 weights with
    activations quantized per forward (fbgemm's int8 products) measured 1.7x faster a token. Each layer's
    `down_proj` (its input carries Qwen's largest activation outliers, which one activation scale a forward loses)
    and the `lm_head` stay fp32: with them the greedy next token agrees with fp32's 97.5 % of the time when
    decoding, without 92.5 % (`benchmarks/forward_cost.py`, RESULTS.md). Weights are quantized per output
    channel. torch.ao's eager API is deprecated in favour of torchao (not tried here); torch 2.13, the pinned
    version, ships it.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    chosen = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not any(part in name for part in keep)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notices above, printed once per layer
        return quantize_dynamic(model, chosen, inplace=True)
