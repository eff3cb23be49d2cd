"""Train a DiffusionGemma-architecture model from scratch on fill-in-the-middle code (`blockfill train`).

Each step: encode `<bos> prefix <fim_suffix> suffix` (suffix at positions after the canvas), corrupt the canvas
target (middle, EOS, padding) with uniform random tokens at a random rate, and predict the clean canvas. Two
losses share one set of weights: cross-entropy on the canvas, and next-token cross-entropy on the encoder's own
hidden states, which gives a dense language-modelling signal on every prompt token at almost no extra cost.
Self-conditioning: on about half the rows the decoder first runs without gradient and its logits are fed back.

`objective=ar_fim` trains the autoregressive baseline (engine.training.ar_fim) on the same example stream instead.
"""

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion, Gemma4ForCausalLM, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicCache

from engine.errors import ConfigError
from engine.models.configs import ARCHITECTURES, build_config
from engine.models.loading import resolve_device
from engine.prompt import PromptBatch, SpecialTokens, build_prompt, canvas_target, collate_prompts
from engine.training.ar_fim import ar_fim_loss, build_ar_config, collate_ar
from engine.training.corpus import LANGUAGE_SUFFIXES, collect_sources, split_texts
from engine.training.examples import FimExample, sample_example
from engine.training.tokenizer import save_tokenizer, train_tokenizer


@dataclass
class TrainConfig:
    out_dir: str = "runs/blockfill-tiny"  # checkpoints, tokenizer and logs; `--resume` continues from here
    architecture: str = "blockfill-tiny"  # a key of engine.models.configs.ARCHITECTURES
    objective: str = "diffusion"  # "diffusion" (DiffusionGemma, the product) or "ar_fim" (the causal baseline)
    tokenizer_dir: str = ""  # reuse this directory's tokenizer (baselines share one); "" trains a new one
    init_from: str = ""  # start from this exported checkpoint's weights and tokenizer instead of random ones
    vocab_size: int = 4096  # BPE vocabulary, special tokens included
    tokenizer_sample_mb: int = 12  # MB of training text the tokenizer learns from
    steps: int = 1200  # optimizer steps
    batch_size: int = 16  # rows a step
    lr: float = 2e-3  # peak learning rate (AdamW), after `warmup` steps, cosine to 10 % by `steps`
    warmup: int = 100
    weight_decay: float = 0.05
    canvas_lengths: list[int] = field(default_factory=lambda: [16, 32, 64])  # one is drawn per step
    max_prefix_tokens: int = 256  # prompt budget before the hole
    max_suffix_tokens: int = 64  # and after it
    ar_loss_weight: float = 1.0  # weight of the encoder's next-token loss (1.0 beat 0.5: RESULTS.md, ablations)
    padding_weight: float = 0.2  # canvas-loss weight of padding after the EOS: easy tokens that would swamp the middle
    self_conditioning_rate: float = 0.5  # share of rows that get the previous prediction fed back
    noise_power: float = 1.0  # a row's corruption rate is u ** noise_power, u ~ U(0, 1); < 1: noisier canvases
    eval_every: int = 200  # steps between validation losses
    eval_batches: int = 8
    save_every: int = 50  # steps between checkpoints
    time_limit_minutes: float = 0  # stop after a checkpoint once this long has passed (0: run to `steps`)
    seed: int = 0
    device: str = "auto"  # "auto": CUDA where present, else CPU
    languages: str = "python:0.7,javascript:0.12,typescript:0.08,go:0.1"  # share of examples drawn from each
    corpus_dir: str = "runs/corpus"  # where `blockfill corpus fetch` put the non-Python sources
    precision: str = "auto"  # forward passes under bf16 autocast ("bf16"), or not ("fp32"); "auto": bf16 where native


@dataclass(frozen=True)
class TrainBatch:
    prompt: PromptBatch
    target: torch.Tensor  # [B, C] clean canvas: middle, EOS, padding


def collate_examples(
    examples: list[FimExample], canvas_length: int, special: SpecialTokens, layout: str, device: str
) -> TrainBatch:
    prompts = [build_prompt(e.prefix_ids, e.suffix_ids, canvas_length, layout, special) for e in examples]
    targets = [canvas_target(e.middle_ids, canvas_length, special) for e in examples]
    return TrainBatch(
        prompt=collate_prompts(prompts, canvas_length, special.pad, device),
        target=torch.tensor(targets, device=device),
    )


def _softcapped_logits(model: DiffusionGemmaForBlockDiffusion, hidden: torch.Tensor) -> torch.Tensor:
    cap = model.final_logit_softcapping
    return torch.tanh(model.lm_head(hidden).float() / cap) * cap


def fim_loss(
    model: DiffusionGemmaForBlockDiffusion,
    batch: TrainBatch,
    generator: torch.Generator,
    ar_loss_weight: float,
    self_conditioning_rate: float,
    padding_weight: float = 0.2,
    noise_power: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training objective for one batch; returns the loss and its parts for logging."""
    p = batch.prompt
    bsz, canvas_length = batch.target.shape
    vocab = model.config.text_config.vocab_size
    device = batch.target.device
    cache = DynamicCache(config=model.config.text_config)
    encoded = model.model.encoder(
        input_ids=p.input_ids,
        attention_mask=p.attention_mask,
        position_ids=p.position_ids,
        past_key_values=cache,
    )
    # Next-token loss where the next token really is the next position (not across the jump to the suffix).
    ar_logits = _softcapped_logits(model, encoded.last_hidden_state[:, :-1])  # [B, L-1, V]
    follows = (p.position_ids[:, 1:] == p.position_ids[:, :-1] + 1) & p.attention_mask[:, 1:] & p.attention_mask[:, :-1]
    ar_targets = p.input_ids[:, 1:].masked_fill(~follows, -100)
    ar_loss = F.cross_entropy(ar_logits.flatten(0, 1), ar_targets.flatten(), ignore_index=-100)

    noise_rate = torch.rand(bsz, 1, device=device, generator=generator) ** noise_power  # [B, 1]
    corrupt = torch.rand(bsz, canvas_length, device=device, generator=generator) < noise_rate  # [B, C]
    random_tokens = torch.randint(0, vocab, (bsz, canvas_length), device=device, generator=generator)
    canvas = torch.where(corrupt, random_tokens, batch.target)  # [B, C]
    decoder_mask = F.pad(p.attention_mask, (0, canvas_length), value=True)  # [B, L + C]
    decode = dict(
        past_key_values=cache,
        decoder_input_ids=canvas,
        decoder_position_ids=p.canvas_position_ids,
        decoder_attention_mask=decoder_mask,
    )
    with torch.no_grad():
        first_guess = model(**decode).logits  # [B, C, V]
    use_guess = torch.rand(bsz, device=device, generator=generator) < self_conditioning_rate  # [B]
    logits = model(**decode, self_conditioning_logits=first_guess, self_conditioning_mask=use_guess).logits
    per_token = F.cross_entropy(logits.flatten(0, 1), batch.target.flatten(), reduction="none").view(bsz, -1)
    # Padding is most of a canvas and trivial to predict; full weight would teach "stop at once" (the EOS trap).
    after_eos = (batch.target == model.config.text_config.pad_token_id).cumsum(-1) > 0  # [B, C]
    weights = torch.where(after_eos, padding_weight, 1.0)
    canvas_loss = (per_token * weights).sum() / weights.sum()
    loss = canvas_loss + ar_loss_weight * ar_loss
    return loss, {"canvas": canvas_loss.item(), "ar": ar_loss.item()}


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """bf16 autocast where the hardware runs it natively: 1.2-1.6x faster steps on an AVX512-BF16 CPU (RESULTS.md)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision must be 'auto', 'bf16' or 'fp32', not {precision!r}")
    if precision == "fp32":
        return None
    if device.startswith("cuda"):
        native = torch.cuda.is_bf16_supported()
    else:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if precision == "bf16" or native else None


def _learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def language_weights(spec: str) -> dict[str, float]:
    """`"python:0.7,go:0.3"` -> `{"python": 0.7, "go": 0.3}`, checked against the languages the corpus knows."""
    weights = {}
    for item in spec.split(","):
        name, _, share = item.partition(":")
        try:
            weights[name.strip()] = float(share)
        except ValueError:
            raise ConfigError(f"languages must look like 'python:0.7,go:0.3', got {spec!r}") from None
    unknown = set(weights) - set(LANGUAGE_SUFFIXES)
    if unknown or not all(w > 0 for w in weights.values()):
        raise ConfigError(f"languages: unknown {sorted(unknown)} or a share <= 0 in {spec!r}")
    return weights


class ExampleStream:
    """Random FIM batches from texts grouped by language, reproducible from a seed; each example's language is
    drawn by the configured shares. Both objectives see the same examples."""

    def __init__(self, texts: dict[str, list[str]], tokenizer: PreTrainedTokenizerBase, cfg: TrainConfig, seed: int):
        self.texts, self.tokenizer, self.cfg = texts, tokenizer, cfg
        weights = {name: share for name, share in language_weights(cfg.languages).items() if texts.get(name)}
        if not weights:
            raise ConfigError(f"no texts for any of the languages {cfg.languages!r}")
        self.languages, self.shares = zip(*weights.items(), strict=True)
        self.rng = random.Random(seed)

    def next_examples(self) -> tuple[list[FimExample], int]:
        """A batch of examples whose middles fit the canvas length drawn for this step, and that length."""
        canvas_length = self.rng.choice(self.cfg.canvas_lengths)
        examples: list[FimExample] = []
        while len(examples) < self.cfg.batch_size:
            language = self.rng.choices(self.languages, self.shares)[0]
            example = sample_example(
                self.rng.choice(self.texts[language]),
                self.tokenizer,
                self.rng,
                canvas_length,
                self.cfg.max_prefix_tokens,
                self.cfg.max_suffix_tokens,
            )
            if example is not None:
                examples.append(example)
        return examples, canvas_length


def batch_loss(
    model: torch.nn.Module,
    cfg: TrainConfig,
    stream: ExampleStream,
    special: SpecialTokens,
    device: str,
    generator: torch.Generator,
    validation: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The next batch's loss under `cfg.objective`. Validation corrupts canvases the same way whatever the run's
    settings (half the rows self-conditioned, uniform noise rates), so runs that differ in them compare."""
    examples, canvas_length = stream.next_examples()
    if cfg.objective == "ar_fim":
        return ar_fim_loss(model, collate_ar(examples, special, device))
    batch = collate_examples(examples, canvas_length, special, model.config.blockfill_fim_layout, device)
    self_conditioning, noise_power = (0.5, 1.0) if validation else (cfg.self_conditioning_rate, cfg.noise_power)
    return fim_loss(model, batch, generator, cfg.ar_loss_weight, self_conditioning, cfg.padding_weight, noise_power)


@torch.no_grad()
def validation_loss(model, stream_texts, tokenizer, cfg: TrainConfig, special, device) -> dict[str, float]:
    """Mean losses over a fixed set of validation batches (same seed every time, so numbers compare)."""
    model.eval()
    stream = ExampleStream(stream_texts, tokenizer, cfg, seed=1234)
    generator = torch.Generator(device=device).manual_seed(1234)
    parts = [
        batch_loss(model, cfg, stream, special, device, generator, validation=True)[1] for _ in range(cfg.eval_batches)
    ]
    model.train()
    return {key: sum(p[key] for p in parts) / len(parts) for key in parts[0]}


def _record_phase(path: Path, step: int, settings: dict) -> None:
    """Append the settings that a (re)start changes to the run's history, so the model card can say how the
    weights were really trained when a resume changed them (a longer schedule, another corpus)."""
    phases = json.loads(path.read_text()) if path.exists() else []
    current: dict = {}
    for phase in phases:
        current.update(phase["changed"])
    changed = {k: v for k, v in settings.items() if current.get(k) != v and k != "out_dir"}
    if changed:
        path.write_text(json.dumps([*phases, {"from_step": step, "changed": changed}], indent=1))


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def new_model(cfg: TrainConfig, vocab_size: int, special: SpecialTokens) -> torch.nn.Module:
    arch = ARCHITECTURES[cfg.architecture]
    special_ids = {"pad": special.pad, "eos": special.eos, "bos": special.bos}
    if cfg.objective == "ar_fim":
        return Gemma4ForCausalLM(build_ar_config(arch, vocab_size, special_ids))
    if cfg.objective != "diffusion":
        raise ConfigError(f"objective must be 'diffusion' or 'ar_fim', not {cfg.objective!r}")
    return DiffusionGemmaForBlockDiffusion(build_config(arch, vocab_size, special_ids, max(cfg.canvas_lengths)))


def run_training(cfg: TrainConfig, resume: bool = False, corpus_limit: int | None = None) -> Path:
    """Train (or continue training) into `cfg.out_dir`; returns the directory. Checkpoints every `save_every`.

    `corpus_limit` keeps only that many files of each source (quick runs in tests).
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = str(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)
    sources = collect_sources(Path(cfg.corpus_dir), tuple(language_weights(cfg.languages)))
    train_texts, val_texts = split_texts(sources, corpus_limit)
    (out / "corpus.json").write_text(
        json.dumps(
            [{**asdict(s), "files": len(s.files)} for s in sources],
            indent=1,
        )
    )

    tokenizer_dir = out / "tokenizer"
    source_tokenizer = cfg.init_from or cfg.tokenizer_dir
    if source_tokenizer and not (tokenizer_dir / "tokenizer.json").exists():
        AutoTokenizer.from_pretrained(source_tokenizer).save_pretrained(str(tokenizer_dir))
    if not (tokenizer_dir / "tokenizer.json").exists():
        sample, size = [], 0
        every_text = [text for texts in train_texts.values() for text in texts]
        for text in random.Random(cfg.seed).sample(every_text, len(every_text)):
            sample.append(text)
            size += len(text)
            if size > cfg.tokenizer_sample_mb * 1_000_000:
                break
        save_tokenizer(train_tokenizer(sample, cfg.vocab_size), tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    special = SpecialTokens.of(tokenizer)
    model = new_model(cfg, len(tokenizer), special)
    checkpoint_path = out / "last.pt"
    resuming = resume and checkpoint_path.exists()
    if cfg.init_from and not resuming:  # a resumed run's checkpoint holds its weights already
        try:
            model.load_state_dict(type(model).from_pretrained(cfg.init_from, dtype=torch.float32).state_dict())
        except (OSError, RuntimeError, ValueError) as err:
            raise ConfigError(f"cannot start from {cfg.init_from!r} as a {cfg.architecture} model: {err}") from err
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    start, history = 0, []
    if resuming:
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    _record_phase(out / "phases.json", start, asdict(cfg))

    stream = ExampleStream(train_texts, tokenizer, cfg, seed=cfg.seed + start)
    generator = torch.Generator(device=device).manual_seed(cfg.seed + start)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="training", unit="step")
    began = time.time() - (history[-1]["seconds"] if history else 0)  # seconds count across resumes
    dtype = autocast_dtype(cfg.precision, device)
    session_began = time.time()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(cfg, step)
        with torch.autocast(device.split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, parts = batch_loss(model, cfg, stream, special, device, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix({name: f"{value:.3f}" for name, value in parts.items()})
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            val = validation_loss(model, val_texts, tokenizer, cfg, special, device)
            history.append(
                {
                    "step": done,
                    "seconds": round(time.time() - began),
                    **{f"val_{k}": v for k, v in val.items()},
                }
            )
            (out / "history.json").write_text(json.dumps(history, indent=1))
            bar.write(f"step {done}: validation " + ", ".join(f"{k} loss {v:.4f}" for k, v in val.items()))
        out_of_time = cfg.time_limit_minutes > 0 and time.time() - session_began > 60 * cfg.time_limit_minutes
        if done % cfg.save_every == 0 or done == cfg.steps or out_of_time:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": done, "history": history}
            _atomic_save(state, checkpoint_path)
            model.config.save_pretrained(str(out))
        if out_of_time:
            bar.write(f"stopped at step {done} after {cfg.time_limit_minutes} minutes; --resume continues")
            break
    return out
