"""The autoregressive baseline: a causal LM trained on the same FIM examples in PSM order (`objective=ar_fim`).

Issue 7 asks whether block diffusion infills as well as autoregression at equal size, tokenizer, corpus and
compute. This objective answers it with transformers' dense Gemma 4 causal LM, widened so its parameter count
matches the diffusion architecture of the same name, and trained on `<bos><fim_prefix> prefix <fim_suffix>
suffix <fim_middle> middle <eos>` (engine.prompt's `fim_text` layout, so inference builds the same prompt)
with next-token loss on every token, the standard FIM recipe.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaForBlockDiffusion, Gemma4ForCausalLM, Gemma4TextConfig

from engine.models.configs import TinyArchitecture, build_config, shared_text_settings
from engine.prompt import SpecialTokens, build_prompt
from engine.training.examples import FimExample

AR_LAYOUT = "fim_text"


def _diffusion_text_parameters(arch: TinyArchitecture, vocab_size: int, special_ids: dict[str, int]) -> int:
    """Parameters of the diffusion model's text stack (the tiny vision tower excluded): the size to match."""
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(build_config(arch, vocab_size, special_ids))
    return sum(p.numel() for name, p in model.named_parameters() if "vision" not in name)


def build_ar_config(arch: TinyArchitecture, vocab_size: int, special_ids: dict[str, int]) -> Gemma4TextConfig:
    """A dense causal config with `arch`'s width, depth and attention, its MLP sized to match the parameter count."""

    def config(intermediate: int) -> Gemma4TextConfig:
        return Gemma4TextConfig(
            **shared_text_settings(arch, vocab_size, special_ids),
            intermediate_size=intermediate,
            hidden_size_per_layer_input=0,  # no per-layer input embeddings: they would add a second vocabulary
            vocab_size_per_layer_input=vocab_size,
            blockfill_fim_layout=AR_LAYOUT,
            blockfill_architecture=arch.__dict__,
        )

    target = _diffusion_text_parameters(arch, vocab_size, special_ids)
    base = arch.intermediate_size + arch.experts * arch.expert_size
    with torch.device("meta"):
        have = sum(p.numel() for p in Gemma4ForCausalLM(config(base)).parameters())
    per_unit = 3 * arch.hidden_size * arch.layers  # gate, up and down projections grow by this per MLP unit
    return config(base + max(0, round((target - have) / per_unit)))


@dataclass(frozen=True)
class ArBatch:
    input_ids: torch.Tensor  # [B, L] right-padded PSM sequences ending in EOS
    attention_mask: torch.Tensor  # [B, L] long, 0 on padding
    labels: torch.Tensor  # [B, L] input ids, -100 on padding
    middle: torch.Tensor  # [B, L] bool: positions whose label is a middle or EOS token


def collate_ar(examples: list[FimExample], special: SpecialTokens, device: str) -> ArBatch:
    rows, middles = [], []
    for e in examples:
        prompt = build_prompt(e.prefix_ids, e.suffix_ids, 0, AR_LAYOUT, special).input_ids
        rows.append(prompt + e.middle_ids + [special.eos])
        middles.append([False] * len(prompt) + [True] * (len(e.middle_ids) + 1))
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [special.pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    middle = torch.tensor([m + [False] * (width - len(m)) for m in middles], device=device)
    return ArBatch(ids, mask, ids.masked_fill(mask == 0, -100), middle)


def ar_fim_loss(model: Gemma4ForCausalLM, batch: ArBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token loss on every token (what is optimized), and on the middle alone (what infilling needs)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    labels = batch.labels[:, 1:]
    per_token = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none")
    per_token = per_token.view_as(labels)
    real = labels != -100
    middle = batch.middle[:, 1:] & real
    loss = per_token[real].mean()
    return loss, {"lm": loss.item(), "middle": per_token[middle].mean().item()}
