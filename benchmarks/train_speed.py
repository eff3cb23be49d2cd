"""Training step time: fp32 against bf16 autocast, side by side in this process on the same batches.

    python -m benchmarks.train_speed [--architecture blockfill-tiny] [--objective diffusion] [--steps 6]

Both settings train a fresh model of the architecture on the same stream of FIM examples (standard-library
files) and alternate in rounds, so background load hits both alike. Reported: the median seconds a step each, and
their ratio. `TrainConfig.precision="auto"` picks bf16 where this ratio is worth having (native bf16 hardware).
"""

import argparse
import statistics
import sysconfig
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from engine.models.loading import EMBEDDED_DIR
from engine.prompt import SpecialTokens
from engine.training.train import ExampleStream, TrainConfig, batch_loss, new_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--architecture", default="blockfill-tiny")
    parser.add_argument("--objective", default="diffusion", choices=["diffusion", "ar_fim"])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per setting (after one warm-up round)")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR))
    special = SpecialTokens.of(tokenizer)
    cfg = TrainConfig(architecture=args.architecture, objective=args.objective)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = {"python": [(stdlib / name).read_text() for name in ("textwrap.py", "argparse.py", "json/decoder.py")]}
    runs = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        model = new_model(cfg, len(tokenizer), special).train()
        runs[name] = (
            model,
            torch.optim.AdamW(model.parameters(), lr=1e-3),
            dtype,
            ExampleStream(texts, tokenizer, cfg, 0),
        )
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.steps + 1):
        for name, (model, optimizer, dtype, stream) in runs.items():
            generator = torch.Generator().manual_seed(round_)
            began = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss, _ = batch_loss(model, cfg, stream, special, "cpu", generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if round_:  # the first round warms up both
                seconds[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{args.architecture} {args.objective}, batch {cfg.batch_size}, {torch.get_num_threads()} threads")
    for name, median in medians.items():
        print(f"  {name}: {median:.2f} s a step (median of {len(seconds[name])})")
    print(f"  bf16 speed-up: {medians['fp32'] / medians['bf16']:.2f}x")


if __name__ == "__main__":
    main()
