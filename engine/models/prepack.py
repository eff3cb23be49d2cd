"""fp32 Linear layers with their weights laid out once for the CPU's matrix kernels (`prepack_weights`).

Why: torch's `nn.Linear` on the CPU hands a product of a few rows to a BLAS call that is slow for thin inputs,
so a forward of 5 new tokens of qwen2.5-coder-0.5b cost 4x a forward of one, and every drafted or looked-up
token that a forward verifies was nearly as dear as decoding it (benchmarks/RESULTS.md). oneDNN's kernels over
a weight reordered once into their blocked layout (the layout torch's own compiler freezes a CPU model into)
make those products 2-4x faster (with two threads, a forward of 5 tokens costs 1.4x one, not 4x). A single
row (one decoded token) is read fastest from the weight transposed to [in, out], so each layer keeps that copy
too. The products are the same fp32 sums in another order: the greedy next token equals `nn.Linear`'s on
every position measured. Costs memory: a layer holds two copies of its weight instead of one.
"""

import torch
import torch.nn.functional as F
from torch import nn

PACKED_FOR_ROWS = 5  # the row count oneDNN's layout is chosen for
# oneDNN's kernel for 2 or 3 rows is slower than its kernel for 4 on CPU-2 (one thread, nine of the base's layers:
# 2 rows 11.5 ms, 3 rows 8.3, 4 rows 7.3), so fewer rows than this are padded with zero rows up to it.
FEWEST_ROWS = 4


class PrepackedLinear(nn.Module):
    """`nn.Linear`'s forward over a weight kept as [in, out] (one row) and in oneDNN's layout (several rows)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach()  # [out, in]
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = None if linear.bias is None else linear.bias.detach()  # [out]
        self.transposed = weight.t().contiguous()  # [in, out]
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACKED_FOR_ROWS)  # opaque, oneDNN's blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).contiguous()  # [N, in]
        if rows.shape[0] == 1:
            out = rows @ self.transposed if self.bias is None else torch.addmm(self.bias, rows, self.transposed)
        else:
            count = rows.shape[0]
            if count < FEWEST_ROWS:
                rows = F.pad(rows, (0, 0, 0, FEWEST_ROWS - count))  # [FEWEST_ROWS, in], zero rows after
            out = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [None], "")[:count]
        return out.reshape(*x.shape[:-1], self.out_features)


def prepack_linears(model: nn.Module) -> int:
    """Swap `model`'s fp32 `nn.Linear` layers on the CPU for `PrepackedLinear`, in place, for inference only (the
    swapped layers hold no parameters and take no gradients); returns how many were swapped.

    A layer whose kernels this torch build lacks, or whose prepacked product differs from `nn.Linear`'s on a
    probe, stays as it is, so the swap can only change speed."""
    if not torch.backends.mkldnn.is_available():
        return 0
    swapped: dict[int, PrepackedLinear] = {}  # by the layer's id: a layer two modules share stays one layer
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is not nn.Linear or child.weight.dtype != torch.float32 or child.weight.device.type != "cpu":
                continue
            prepacked = swapped.get(id(child)) or _prepacked_or_none(child)
            if prepacked is not None:
                setattr(module, name, prepacked)
                swapped[id(child)] = prepacked
    return len(swapped)


def _prepacked_or_none(linear: nn.Linear) -> PrepackedLinear | None:
    try:
        prepacked = PrepackedLinear(linear)
        probe = torch.randn(3, linear.in_features)  # [3, in]
        with torch.inference_mode():
            same = torch.allclose(prepacked(probe), F.linear(probe, linear.weight, linear.bias), rtol=1e-4, atol=1e-4)
    except RuntimeError:
        return None
    return prepacked if same else None
