"""Train blockfill-coder's drafting adapter: the base model distils itself into a block of masked positions.

The engine keeps a draft only where the base predicts the same token (engine.coder), so the drafts should match
the base, not the corpus: each masked position learns the base's own next-token distribution at its position
(on-policy self-distillation, as OPDLM does, teacher-forced on corpus text). One example is a FIM prompt and its
middle from the four-language corpus:

    prompt + middle + end     clean, read once by the frozen base without gradients: its KV cache, and the
                              base's distribution at every middle position (the targets)
    K windows of B masks      window k starts at a random middle position s_k and reads the cache up to s_k and
                              its own masks (the mask layout of engine.coder.draft_attention); mask j learns the
                              base's distribution for position s_k + j + 1

A share of the examples (`plain_share`) is the plain file instead, `<|fim_prefix|>` + prefix + middle + suffix
with no suffix before the middle: the context in which the engine's reranker decodes its second middle, the
plain continuation, beside the FIM one (engine.infill). Its windows start anywhere after the prefix.

Only the K * B masked positions carry gradients, so a step costs one frozen prefill and a small forward and
backward: the CPU can train this at all. Runs are resumable (`--resume`) and time-limited, so a run can go on
across sessions and short GPU leases.
"""

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers.cache_utils import DynamicCache

from engine.errors import ConfigError
from engine.models.gated_lora import AdapterConfig, DraftingAdapter
from engine.models.loading import LoadedModel, load_model
from engine.prompt import SpecialTokens, build_prompt, plain_file_head
from engine.training.corpus import collect_sources, split_texts
from engine.training.examples import sample_example
from engine.training.train import autocast_dtype, language_weights


@dataclass
class CoderTrainConfig:
    out_dir: str = "runs/blockfill-coder"  # checkpoint, adapter and logs; `--resume` continues from here
    base: str = "qwen2.5-coder-0.5b"  # the causal model to adapt (a catalog name or a checkpoint directory)
    block_size: int = 8  # masked positions a window (and a decoding step) drafts
    rank: int = 16
    alpha: float = 32.0
    mask_token: str = "<|fim_pad|>"  # the token id recorded as the mask (its embedding is learned separately)
    windows: int = 8  # windows drawn from each example
    accumulate: int = 4  # examples a optimizer step
    steps: int = 400  # optimizer steps
    lr: float = 2e-4  # 1e-3 stalls at a unigram-like draft on the 0.5B base, 3e-3 diverges (RESULTS.md)
    warmup: int = 20
    # From this step on the learning rate falls linearly to a tenth of `lr` at `steps` (0: it stays `lr`): a run
    # that has trained at a constant rate and resumes with a final `steps` anneals into it.
    decay_from: int = 0
    max_prefix_tokens: int = 256
    max_suffix_tokens: int = 96
    max_middle_tokens: int = 64
    languages: str = "python:0.7,javascript:0.12,typescript:0.08,go:0.1"
    plain_share: float = 0.0  # examples laid out as the plain file (the reranker's plain continuation reads it so)
    init_from: str = ""  # a new run starts from this adapter directory's weights (e.g. the shipped one)
    corpus_dir: str = "runs/corpus"
    eval_examples: int = 24  # held-out examples for the agreement figures (the same ones every time)
    eval_every: int = 50
    save_every: int = 10
    time_limit_minutes: float = 0  # stop after a checkpoint once this long has passed (0: run to `steps`)
    threads: int = 0  # CPU threads (0: torch's default)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # forwards under bf16 autocast ("bf16") or not ("fp32"); "auto": bf16 where native


@dataclass(frozen=True)
class Sequence:
    ids: list[int]  # prompt + middle + end token, or the plain file (`plain_file`)
    middle_start: int  # index of the middle's first token


def _sequences(
    texts: dict[str, list[str]], loaded: LoadedModel, cfg: CoderTrainConfig, rng: random.Random, plain_share: float
):
    """Endless sequences, each language drawn by its share: FIM examples, and `plain_share` of them as the plain
    file (`plain_file`)."""
    shares = {name: share for name, share in language_weights(cfg.languages).items() if texts.get(name)}
    languages, weights = zip(*shares.items(), strict=True)
    end = loaded.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    absent = (None, loaded.tokenizer.unk_token_id)  # a tokenizer without it answers None or its unknown token
    end = end if end not in absent and end >= 0 else loaded.special.eos
    while True:
        text = rng.choice(texts[rng.choices(languages, weights)[0]])
        example = sample_example(
            text, loaded.tokenizer, rng, cfg.max_middle_tokens, cfg.max_prefix_tokens, cfg.max_suffix_tokens
        )
        if example is None:
            continue
        if plain_share and rng.random() < plain_share:  # no draw without it: a run's FIM examples stay its own
            yield plain_file(example.prefix_ids, example.middle_ids + example.suffix_ids, loaded.special)
            continue
        prompt = build_prompt(example.prefix_ids, example.suffix_ids, 0, "fim_text", loaded.special).input_ids
        yield Sequence(prompt + example.middle_ids + [end], len(prompt))


def plain_file(prefix_ids: list[int], rest_ids: list[int], special: SpecialTokens) -> Sequence:
    """The file as the engine's plain continuation reads it (engine.prompt.plain_file_head), then the rest of the
    file, drafted from the prefix's end on."""
    head = plain_file_head(prefix_ids, special)
    return Sequence(head + rest_ids, len(head))


def window_attention(length: int, starts: list[int], block: int, device=None) -> torch.Tensor:
    """[K * B, length + K * B]: window k's masks read positions before s_k and the masks of window k."""
    allowed = torch.zeros(len(starts) * block, length + len(starts) * block, dtype=torch.bool, device=device)
    for k, start in enumerate(starts):
        rows = slice(k * block, (k + 1) * block)
        allowed[rows, :start] = True
        allowed[rows, length + k * block : length + (k + 1) * block] = True
    return allowed


def distillation_loss(
    lm: torch.nn.Module, adapter: DraftingAdapter, sequence: Sequence, windows: int, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft cross-entropy of the drafts against the base's distributions; which drafts agree with the base's top
    token, and which have a target inside the sequence (both [K, B] bool)."""
    device, block = lm.device, adapter.config.block_size
    ids = torch.tensor([sequence.ids], device=device)
    length = len(sequence.ids)
    cache = DynamicCache(config=lm.config)
    with torch.no_grad():
        hidden = lm.model(input_ids=ids, past_key_values=cache, use_cache=True).last_hidden_state[0]  # [L, H]
    # The masks of a window starting at s draft positions s + 1 .. s + B: the base's view of each is the hidden
    # state just before it.
    starts = [rng.randrange(sequence.middle_start, length) for _ in range(windows)]
    targets = torch.tensor([[s + j + 1 for j in range(block)] for s in starts], device=device)  # [K, B]
    valid = targets < length
    with torch.no_grad():
        teacher = lm.lm_head(hidden[(targets - 1).clamp(max=length - 1)]).float().log_softmax(-1)  # [K, B, V]
    embeds = adapter.mask_embedding.expand(1, windows * block, -1)  # [1, K * B, H]
    positions = torch.tensor([[s + j for s in starts for j in range(block)]], device=device)  # [1, K * B]
    allowed = window_attention(length, starts, block, device)
    with adapter.gate.open_on(torch.ones(1, windows * block, 1, device=device)):
        logits = lm(
            inputs_embeds=embeds,
            position_ids=positions,
            attention_mask={"full_attention": allowed[None, None]},
            past_key_values=cache,
            use_cache=True,
        ).logits[0]  # [K * B, V]
    student = logits.float().log_softmax(-1).view(windows, block, -1)  # [K, B, V]
    per_position = -(teacher.exp() * student).sum(-1)  # [K, B]
    loss = (per_position * valid).sum() / valid.sum().clamp(min=1)
    agree = (student.argmax(-1) == teacher.argmax(-1)) & valid
    return loss, agree, valid


def learning_rate(cfg: CoderTrainConfig, step: int) -> float:
    """Warmup, then `lr`, then (from `decay_from`) a linear fall to `lr / 10` at `steps`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if not cfg.decay_from or step < cfg.decay_from:
        return cfg.lr
    progress = min(1.0, (step - cfg.decay_from) / max(1, cfg.steps - cfg.decay_from))
    return cfg.lr * (1 - 0.9 * progress)


@torch.no_grad()
def agreement(lm, adapter: DraftingAdapter, sequences: list[Sequence], windows: int) -> list[float]:
    """Share of drafts whose top token is the base's, by offset in the block (held-out sequences, fixed windows)."""
    rng = random.Random(1234)
    agreed = torch.zeros(adapter.config.block_size)
    counted = torch.zeros(adapter.config.block_size)
    for sequence in sequences:
        _, agree, valid = distillation_loss(lm, adapter, sequence, windows, rng)
        agreed += agree.sum(0).float().cpu()
        counted += valid.sum(0).float().cpu()
    return (agreed / counted.clamp(min=1)).tolist()


# What a run learns, from what, up to which step, and how often it is checked and saved: a resume keeps them (a
# resumed 250-step evaluation cadence fell back to 50, a fifth of the time in held-out reads). Where it runs
# (device, threads, folders) and how many minutes it may take are the resuming machine's own.
RECIPE = frozenset(
    {"base", "block_size", "rank", "alpha", "mask_token", "windows", "accumulate", "lr", "warmup", "steps", "seed"}
    | {"decay_from"}
    | {"max_prefix_tokens", "max_suffix_tokens", "max_middle_tokens", "languages", "eval_examples"}
    | {"plain_share", "init_from"}
    | {"eval_every", "save_every"}
)


def _held_out(texts: dict[str, list[str]], loaded: LoadedModel, cfg: CoderTrainConfig, plain_share: float):
    """The same `eval_examples` validation sequences every time (a fixed seed)."""
    stream = _sequences(texts, loaded, cfg, random.Random(4321), plain_share)
    return [next(stream) for _ in range(cfg.eval_examples)]


def _start_from(adapter: DraftingAdapter, directory: Path) -> None:
    """Load a saved adapter's weights into a new run's adapter, which must have its shape and block size."""
    saved = AdapterConfig.read(directory)
    if (saved.block_size, saved.rank, saved.mask_token_id) != (
        adapter.config.block_size,
        adapter.config.rank,
        adapter.config.mask_token_id,
    ):
        raise ConfigError(
            f"a run with block_size {adapter.config.block_size}, rank {adapter.config.rank} and mask token "
            f"{adapter.config.mask_token_id} cannot start from {directory}, which has {saved.block_size}, "
            f"{saved.rank} and {saved.mask_token_id}: set them alike"
        )
    adapter.load(directory)


def run_settings(out_dir: Path) -> dict:
    """The recipe of the run in `out_dir` (from its train_config.json); none for a new run. A resume starts from it,
    so it goes on with the run's own block size, learning rate and example shapes, not today's defaults."""
    path = out_dir / "train_config.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    return {key: value for key, value in recorded.items() if key in RECIPE}


def run_coder_training(cfg: CoderTrainConfig, resume: bool = False, corpus_limit: int | None = None) -> Path:
    """Train (or continue) the adapter in `cfg.out_dir`; the adapter directory is `out_dir/adapter`."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.base, cfg.device)
    lm = loaded.model
    mask_id = loaded.tokenizer.convert_tokens_to_ids(cfg.mask_token)
    config = AdapterConfig(cfg.base, cfg.block_size, int(mask_id), cfg.rank, cfg.alpha)
    adapter = DraftingAdapter(lm, config).to(loaded.device)
    # The trainable parts stay fp32 whatever the base's dtype (bf16 on CUDA): AdamW's small steps survive, and
    # last.pt has one format, so a run moves between CPU and GPU leases. bf16 forwards come from autocast.
    for parameter in adapter.trainable_parameters():
        parameter.data = parameter.data.float()
    dtype = autocast_dtype(cfg.precision, str(loaded.device))
    if dtype is None and lm.dtype != torch.float32:
        raise ConfigError(f"precision={cfg.precision!r} needs an fp32 base, and on {loaded.device} it loads {lm.dtype}")
    autocast = lambda: torch.autocast(loaded.device.type, dtype=dtype, enabled=dtype is not None)  # noqa: E731
    optimizer = torch.optim.AdamW(adapter.trainable_parameters(), lr=cfg.lr, weight_decay=0.0)
    checkpoint = out / "last.pt"
    start, history = 0, []
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=loaded.device, weights_only=False)
        adapter.load_state(state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
    elif cfg.init_from:
        _start_from(adapter, Path(cfg.init_from))
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))

    sources = collect_sources(Path(cfg.corpus_dir), tuple(language_weights(cfg.languages)))
    train_texts, val_texts = split_texts(sources, corpus_limit)
    stream = _sequences(train_texts, loaded, cfg, random.Random(cfg.seed + start), cfg.plain_share)
    held_out = _held_out(val_texts, loaded, cfg, plain_share=0.0)
    # The plain file's agreement is measured on its own examples only where the run trains on it.
    held_out_plain = _held_out(val_texts, loaded, cfg, plain_share=1.0) if cfg.plain_share else []
    rng = random.Random(cfg.seed + start)

    lm.train()
    began, session_began = time.time() - (history[-1]["seconds"] if history else 0), time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="adapter", unit="step")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        optimizer.zero_grad(set_to_none=True)
        losses, agreed = [], []
        for _ in range(cfg.accumulate):
            with autocast():
                loss, agree, _ = distillation_loss(lm, adapter, next(stream), cfg.windows, rng)
            (loss / cfg.accumulate).backward()
            losses.append(loss.item())
            agreed.append(float(agree[:, 0].float().mean()))
        torch.nn.utils.clip_grad_norm_(adapter.trainable_parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{sum(losses) / len(losses):.3f}", first=f"{sum(agreed) / len(agreed):.2f}")
        done = step + 1
        record = {"step": done, "seconds": round(time.time() - began), "loss": sum(losses) / len(losses)}
        if done % cfg.eval_every == 0 or done == cfg.steps:
            lm.eval()
            with autocast():
                agreed_by_offset = agreement(lm, adapter, held_out, cfg.windows)
                agreed_plain = agreement(lm, adapter, held_out_plain, cfg.windows) if held_out_plain else None
            record["agreement_by_offset"] = [round(a, 4) for a in agreed_by_offset]
            if agreed_plain is not None:
                record["plain_agreement_by_offset"] = [round(a, 4) for a in agreed_plain]
                bar.write(f"step {done}: held-out plain-file agreement by offset {record['plain_agreement_by_offset']}")
            lm.train()
            bar.write(f"step {done}: held-out agreement by offset {record['agreement_by_offset']}")
        history.append(record)
        out_of_time = cfg.time_limit_minutes > 0 and time.time() - session_began > 60 * cfg.time_limit_minutes
        if done % cfg.save_every == 0 or done == cfg.steps or out_of_time:
            state = {"adapter": adapter.state(), "optimizer": optimizer.state_dict(), "step": done}
            torch.save({**state, "history": history}, out / "last.tmp")
            (out / "last.tmp").replace(checkpoint)
            adapter.save(out / "adapter")
            (out / "history.json").write_text(json.dumps(history, indent=1))
        if out_of_time:
            bar.write(f"stopped at step {done} after {cfg.time_limit_minutes} minutes; --resume continues")
            break
    lm.eval()
    return out / "adapter"
