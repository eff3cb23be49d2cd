"""Named DiffusionGemma configurations the project builds from scratch (gpt-fast's `transformer_configs` habit).

transformers 5.23 cannot build a DiffusionGemma without experts, so even the tiny configs are a small MoE, and
a text-only model gets a one-layer 8-wide vision tower instead of the 168M-parameter default.
"""

from dataclasses import asdict, dataclass

from transformers import DiffusionGemmaConfig, DiffusionGemmaTextConfig

# The FIM layouts a checkpoint can declare in its config (`blockfill_fim_layout`); engine.prompt implements them.
FIM_LAYOUTS = ("suffix_after_canvas", "fim_text")

_TINY_VISION = dict(
    model_type="gemma4_vision",
    hidden_size=8,
    intermediate_size=8,
    num_hidden_layers=1,
    num_attention_heads=1,
    num_key_value_heads=1,
    head_dim=8,
    global_head_dim=8,
)


@dataclass(frozen=True)
class TinyArchitecture:
    """The few numbers that size a from-scratch model; everything else keeps DiffusionGemma's defaults."""

    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width (every layer has a dense MLP beside its experts)
    experts: int
    top_k_experts: int
    expert_size: int  # moe_intermediate_size
    sliding_window: int = 512


ARCHITECTURES: dict[str, TinyArchitecture] = {
    # The embedded default: ~6M parameters, ~25 ms a 32-token denoising step on 2 CPU cores.
    "blockfill-tiny": TinyArchitecture(256, 4, 4, 2, 64, 512, 4, 2, 128),
    # Unit tests: trains in seconds.
    "micro": TinyArchitecture(64, 2, 2, 1, 32, 128, 4, 2, 32, sliding_window=64),
}


def shared_text_settings(arch: TinyArchitecture, vocab_size: int, special_ids: dict[str, int]) -> dict:
    """Config fields the diffusion model and its autoregressive baseline share: vocabulary, width, depth,
    attention (the last layer global, the rest sliding, as the family does) and special token ids."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        head_dim=arch.head_dim,
        global_head_dim=arch.head_dim,
        num_global_key_value_heads=arch.kv_heads,
        sliding_window=arch.sliding_window,
        max_position_embeddings=8192,
        layer_types=["sliding_attention"] * (arch.layers - 1) + ["full_attention"],
        pad_token_id=special_ids["pad"],
        eos_token_id=special_ids["eos"],
        bos_token_id=special_ids["bos"],
    )


def build_config(
    arch: TinyArchitecture,
    vocab_size: int,
    special_ids: dict[str, int],
    canvas_length: int = 32,
    fim_layout: str = "suffix_after_canvas",
) -> DiffusionGemmaConfig:
    """A DiffusionGemmaConfig for `arch`."""
    if fim_layout not in FIM_LAYOUTS:
        raise ValueError(f"unknown FIM layout {fim_layout!r}; expected one of {FIM_LAYOUTS}")
    text = DiffusionGemmaTextConfig(
        **shared_text_settings(arch, vocab_size, special_ids),
        intermediate_size=arch.intermediate_size,
        num_experts=arch.experts,
        top_k_experts=arch.top_k_experts,
        moe_intermediate_size=arch.expert_size,
    )
    return DiffusionGemmaConfig(
        text_config=text,
        vision_config=dict(_TINY_VISION),
        canvas_length=canvas_length,
        blockfill_fim_layout=fim_layout,
        blockfill_architecture=asdict(arch),
    )
