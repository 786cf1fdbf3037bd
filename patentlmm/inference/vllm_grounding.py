"""`describe --backend vllm --grounding`: the grounding `LogitsProcessor` run per request inside vLLM's V1 engine."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoTokenizer
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from patentlmm.inference.grounding import GroundingLogitsProcessor

__all__ = ["EXTRA_ARG", "GroundingAdapter"]

EXTRA_ARG = (
    "patentlmm_grounding"  # `SamplingParams.extra_args` key: {"ocr_text", "grounding", "bias", "max_new_tokens"}
)


class GroundingAdapter(AdapterLogitsProcessor):
    """vLLM's per-request adapter (`vllm.LLM(logits_processors=[GroundingAdapter])`): each request whose
    `SamplingParams.extra_args` holds `EXTRA_ARG` gets its own one-row `GroundingLogitsProcessor` over the served
    folder's decoder tokenizer. It runs in vLLM's engine process: which constraints fired stays there."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool):
        super().__init__(vllm_config, device, is_pin_memory)
        model_config = vllm_config.model_config
        # the served folder's own choice (`vllm serve --trust-remote-code`), never left to a prompt
        self.tokenizer = AutoTokenizer.from_pretrained(
            model_config.tokenizer, trust_remote_code=bool(model_config.trust_remote_code)
        )
        self.vocab_size = model_config.get_vocab_size()
        self.eos_token_id = getattr(model_config.hf_config, "eos_token_id", None)

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params: Any):
        spec = (params.extra_args or {}).get(EXTRA_ARG)
        if not spec:
            return None
        grounding = GroundingLogitsProcessor(
            self.tokenizer,
            [spec["ocr_text"]],
            spec["grounding"],
            spec["max_new_tokens"],
            bias=spec.get("bias", 0.0),
            eos_token_id=self.eos_token_id,
            vocab_size=self.vocab_size,
        )

        def apply(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            """logits: (V,), this request's; the processor reads a one-id stand-in prompt followed by `output_ids`."""
            return grounding(torch.tensor([[0, *output_ids]], dtype=torch.long), logits.unsqueeze(0)).squeeze(0)

        return apply
