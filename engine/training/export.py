"""Turn a training run into a shippable checkpoint: fp16 safetensors, tokenizer, config with limits, model card.

fp16 halves the file (the engine loads it back as fp32 on CPU); the context limits the model was trained with
go into its config so the engine never asks it for more.
"""

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion, Gemma4ForCausalLM


def export_checkpoint(run_dir: Path, destination: Path) -> Path:
    train_cfg = json.loads((run_dir / "train_config.json").read_text())
    causal = train_cfg.get("objective") == "ar_fim"
    model_class = Gemma4ForCausalLM if causal else DiffusionGemmaForBlockDiffusion
    config = model_class.config_class.from_pretrained(str(run_dir))
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    config.blockfill_max_prefix_tokens = train_cfg["max_prefix_tokens"]
    config.blockfill_max_suffix_tokens = train_cfg["max_suffix_tokens"]
    config.blockfill_max_canvas = max(train_cfg["canvas_lengths"])
    model = model_class(config)
    model.load_state_dict(state["model"])
    destination.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(str(destination))
    AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")).save_pretrained(str(destination))
    card = baseline_card(run_dir, model, state, train_cfg) if causal else model_card(run_dir, model, state, train_cfg)
    (destination / "MODEL_CARD.md").write_text(card)
    return destination


def baseline_card(run_dir: Path, model: Gemma4ForCausalLM, state: dict, train_cfg: dict) -> str:
    """A short card for the autoregressive baseline: what it is matched to, and its validation curve."""
    curve = "\n".join(f"| {h['step']} | {h['val_lm']:.4f} | {h['val_middle']:.4f} |" for h in state["history"])
    params = sum(p.numel() for p in model.parameters())
    return f"""# blockfill-tiny autoregressive baseline

A {params / 1e6:.1f}M-parameter dense causal LM (transformers' Gemma 4 text model) matched in size, tokenizer,
corpus, examples and steps to the diffusion model `{train_cfg["architecture"]}`, trained by
`blockfill train --set objective=ar_fim` on PSM FIM text (`<bos><fim_prefix> prefix <fim_suffix> suffix
<fim_middle> middle <eos>`, next-token loss on every token). It exists to answer one question in
benchmarks/RESULTS.md: at equal size and training, does block diffusion infill as well as autoregression?

{state["step"]} steps of {train_cfg["batch_size"]} examples (AdamW, peak lr {train_cfg["lr"]}, cosine), seed
{train_cfg["seed"]}; corpus as in {run_dir / "corpus.json"}.

| step | validation loss, all tokens | validation loss, middle and EOS |
|---|---|---|
{curve}
"""


def training_phases(run_dir: Path) -> str:
    """The run's phases (settings changed at a resume) as a markdown list, or "" for a run in one go."""
    path = run_dir / "phases.json"
    phases = json.loads(path.read_text()) if path.exists() else []
    if len(phases) < 2:
        return ""
    lines = [
        f"- from step {p['from_step']}: " + ", ".join(f"`{k}={v}`" for k, v in p["changed"].items()) for p in phases[1:]
    ]
    return "Resumed with changed settings (the numbers above are the last phase's):\n" + "\n".join(lines) + "\n"


def model_card(run_dir: Path, model: DiffusionGemmaForBlockDiffusion, state: dict, train_cfg: dict) -> str:
    corpus = json.loads((run_dir / "corpus.json").read_text())
    history = state["history"]
    last = history[-1] if history else {}
    params = sum(p.numel() for p in model.parameters())
    arch = model.config.blockfill_architecture
    rows = "\n".join(
        f"| {c['name']} | {c.get('language', 'python')} | {c['version']} | {c['license']} | {c['files']} |"
        for c in corpus
    )
    languages = ", ".join(sorted({c.get("language", "python") for c in corpus}))
    curve = "\n".join(f"| {h['step']} | {h['val_canvas']:.4f} | {h['val_ar']:.4f} |" for h in history)
    return f"""# blockfill-tiny

A {params / 1e6:.1f}M-parameter DiffusionGemma-architecture block-diffusion model for fill-in-the-middle code
completion, trained from scratch by `blockfill train` (engine/training/) on a 2-core CPU. It is the embedded
default: small enough for a laptop CPU, and the proof that the training pipeline and FIM layout run end to end.
Trained for only {state["step"]} steps, it has learned the shape of code (indentation, line structure, common
identifiers) but rarely writes correct code: measured quality is in benchmarks/RESULTS.md.

## Architecture
{json.dumps(arch)}; vocabulary {model.config.text_config.vocab_size} (byte-level BPE trained on the corpus, with
`<pad> <eos> <bos> <fim_prefix> <fim_middle> <fim_suffix>`); FIM layout `{model.config.blockfill_fim_layout}`
(prefix at positions before the canvas, suffix at positions after it); canvases of
{train_cfg["canvas_lengths"]} tokens; context up to {train_cfg["max_prefix_tokens"]} prefix and
{train_cfg["max_suffix_tokens"]} suffix tokens. Weights stored in fp16, run in fp32 on CPU.

## Training
{state["step"]} steps of {train_cfg["batch_size"]} FIM examples (AdamW, peak lr {train_cfg["lr"]}, cosine),
spans: whole lines 50 %, rest of a line 25 %, random spans 20 %, empty middles 5 %. Loss: cross-entropy on the
canvas (middle, EOS, padding) corrupted with uniform random tokens at a rate u ** {train_cfg.get("noise_power", 1.0)}
(u uniform on [0, 1]), self-conditioning on
{train_cfg["self_conditioning_rate"]:.0%} of rows, plus {train_cfg["ar_loss_weight"]} x next-token loss on the
encoder. Seed {train_cfg["seed"]}. Forward passes under bf16 autocast where the hardware has it natively.
{training_phases(run_dir)}
Validation (about 1 file in 50, held out by a hash of its name; fixed batches, drawn with the training's language
shares, so the numbers move when `languages` changes; canvases corrupted at uniform rates whatever the run's):
final canvas loss {last.get("val_canvas", float("nan")):.4f},
encoder next-token loss {last.get("val_ar", float("nan")):.4f}.

| step | validation canvas loss | validation encoder loss |
|---|---|---|
{curve}

## Corpus
Languages: {languages}, drawn per example with the shares `{train_cfg.get("languages", "python:1")}`; never
`../shared/data` (the benchmarks).

| source | language | version | licence | files |
|---|---|---|---|---|
{rows}
"""
