"""Fill-in-the-middle on a causal LM, left to right: the same-size baseline (`objective=ar_fim`) or a small
pretrained model, behind the same engine interface as block diffusion so that benchmarks compare like with like.

The prompt is engine.prompt's `fim_text` layout (FIM tokens, or an instruction in the model's chat template); the
middle is decoded greedily with transformers' `generate()` and its KV cache, up to the canvas size the context
chose for the diffusion model, stopping at EOS.
"""

from collections.abc import Callable

import torch
from transformers import PreTrainedModel, StoppingCriteria, StoppingCriteriaList

from engine.denoise import DenoiseResult
from engine.errors import Cancelled
from engine.prompt import PromptBatch, SpecialTokens


class _StopWhenAsked(StoppingCriteria):
    """Ends generation for every row once `should_stop()` turns true (checked after each token)."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped = False

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.stopped = self.stopped or self.should_stop()
        return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def generate_middles(
    model: PreTrainedModel,
    batch: PromptBatch,
    max_new_tokens: int,
    special: SpecialTokens,
    should_stop: Callable[[], bool] | None = None,
) -> DenoiseResult:
    """Greedy middles for a left-padded prompt batch, as a canvas-shaped result (EOS, then padding).

    `steps` is the number of forwards each row needed (tokens up to and including its EOS): the figure that
    compares with denoising steps. Raises Cancelled if `should_stop()` turns true.
    """
    stop = _StopWhenAsked(should_stop or (lambda: False))
    out = model.generate(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask.long(),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=special.eos,
        pad_token_id=special.pad,
        stopping_criteria=StoppingCriteriaList([stop]),
        output_scores=True,
        return_dict_in_generate=True,
    )
    if stop.stopped:
        raise Cancelled("generation cancelled")
    new = out.sequences[:, batch.input_ids.shape[1] :]  # [B, n <= max_new_tokens]
    tokens = torch.full((new.shape[0], max_new_tokens), special.pad, dtype=torch.long, device=new.device)
    tokens[:, : new.shape[1]] = new
    top = torch.stack([s.float().softmax(-1).max(-1).values for s in out.scores], dim=1)  # [B, n]
    steps, confidence = [], []
    for row in range(new.shape[0]):
        ends = (new[row] == special.eos).nonzero().flatten()
        length = int(ends[0]) + 1 if len(ends) else new.shape[1]
        steps.append(length)
        confidence.append(float(top[row, :length].mean()))
    return DenoiseResult(tokens=tokens, steps=steps, confidence=confidence)
