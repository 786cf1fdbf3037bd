"""A tiny PatentLMM made to cite a figure label and numerals whatever it sees (the grounding tests)."""

from __future__ import annotations

import torch

from modeling_patentlmm import PatentLMMForConditionalGeneration
from processing import PatentLMMProcessor

__all__ = ["make_citing"]

_PIECES = ["▁F", "IG", ".", "▁", "1", "▁is", "2", "3", "4"]
_CHAIN = [("▁F", "IG", 10.0), ("IG", ".", 10.0), (".", "▁", 10.0), ("▁", "1", 10.0), ("▁", "2", 6.0)]
_CHAIN += [("▁", "3", 5.0), ("▁", "4", 5.0), ("1", "▁is", 10.0), ("1", "2", 6.0), ("▁is", "▁", 10.0)]
_CHAIN += [("2", "▁is", 10.0), ("3", "▁is", 10.0), ("4", "▁is", 10.0)]


@torch.no_grad()
def make_citing(model: PatentLMMForConditionalGeneration, processor: PatentLMMProcessor):
    """`model` (the tiny one, changed in place) writing "FIG. 1 is 1 is 1 ...": its decoder layers add nothing
    (o_proj, down_proj zero), so each next piece is a fixed function of the last one, set by the embeddings and the LM
    head. After "▁" digits are likely ("1" most, "2"/"3"/"4" less); after "1", "▁is" (and "2" less)."""
    ids = processor.tokenizer.convert_tokens_to_ids
    for name, parameter in model.model.language_model.named_parameters():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            parameter.zero_()
    model.model.language_model.norm.weight.fill_(1.0)
    embeddings, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    embeddings.zero_()
    embeddings[:, 0] = 1.0  # every other piece is followed by "▁F"
    head.zero_()
    for dim, piece in enumerate(_PIECES, start=1):
        embeddings[ids(piece)] = 0.0
        embeddings[ids(piece), dim] = 1.0
    head[ids("▁F"), 0] = 10.0
    for before, after, logit in _CHAIN:
        head[ids(after), 1 + _PIECES.index(before)] = logit
    return model.eval()
