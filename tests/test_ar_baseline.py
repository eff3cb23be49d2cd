"""The autoregressive baseline (issue 7): same size as the diffusion model, same FIM examples in PSM order."""

import torch
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion, Gemma4ForCausalLM

from engine.models.configs import ARCHITECTURES, build_config
from engine.models.loading import EMBEDDED_DIR
from engine.prompt import SpecialTokens
from engine.training.ar_fim import ar_fim_loss, build_ar_config, collate_ar
from engine.training.examples import FimExample

SPECIAL_IDS = {"pad": 0, "eos": 1, "bos": 2}


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "vision" not in name)


def test_ar_config_matches_the_diffusion_parameter_count():
    arch = ARCHITECTURES["blockfill-tiny"]
    with torch.device("meta"):
        diffusion = _parameters(DiffusionGemmaForBlockDiffusion(build_config(arch, 4096, SPECIAL_IDS)))
        causal = _parameters(Gemma4ForCausalLM(build_ar_config(arch, 4096, SPECIAL_IDS)))
    assert abs(causal - diffusion) / diffusion < 0.01


def test_psm_rows_end_in_eos_and_only_the_middle_is_marked():
    special = SpecialTokens.of(AutoTokenizer.from_pretrained(str(EMBEDDED_DIR)))
    batch = collate_ar([FimExample([10, 11], [20], [30, 31, 32]), FimExample([10], [], [30])], special, "cpu")
    first = batch.input_ids[0].tolist()
    assert first == [
        special.bos,
        special.fim_prefix,
        10,
        11,
        special.fim_suffix,
        30,
        31,
        32,
        special.fim_middle,
        20,
        special.eos,
    ]
    assert batch.middle[0].nonzero().flatten().tolist() == [9, 10]  # the middle token and its EOS
    assert batch.labels[1].tolist()[-4:] == [-100] * 4  # the shorter row's padding is never a target
    assert batch.middle[1].nonzero().flatten().tolist() == [6]  # an empty middle: only the EOS


def test_ar_loss_falls_when_trained_on_one_batch():
    special = SpecialTokens.of(AutoTokenizer.from_pretrained(str(EMBEDDED_DIR)))
    torch.manual_seed(0)
    model = Gemma4ForCausalLM(build_ar_config(ARCHITECTURES["micro"], 4096, SPECIAL_IDS))
    batch = collate_ar([FimExample([10, 11, 12], [20, 21], [30, 31])] * 4, special, "cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = ar_fim_loss(model, batch)[0].item()
    for _ in range(10):
        loss, _ = ar_fim_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert ar_fim_loss(model, batch)[0].item() < first / 2
