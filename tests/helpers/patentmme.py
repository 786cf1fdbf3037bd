"""Tiny LayoutLMv3 / PatentMME configurations shared by the tests (a few ms to build a model)."""

from __future__ import annotations

from typing import Any

from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN

__all__ = ["TINY_LAYOUTLMV3", "tiny_patentmme"]

# the encoder's dimensions: 48 wide, 2 layers of 4 heads
TINY_LAYOUTLMV3 = {
    "hidden_size": 48,
    "coordinate_size": 8,
    "shape_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 96,
}


def tiny_patentmme(**overrides: Any) -> dict[str, Any]:
    """`PatentMMEConfig` keywords: `TINY_LAYOUTLMV3`, a MIM vocabulary of `TINY_VQGAN`'s codes + 1, then `overrides`."""
    return {**TINY_LAYOUTLMV3, "mim_vocab_size": TINY_VQGAN["num_embeddings"] + 1, **overrides}
