"""PatentMMEConfig and PatentMMEForPreTraining: the encoder equals LayoutLMv3, the losses equal the authors' formulas,
empty figures train, save/load on both transformers majors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForPreTraining, LayoutLMv3Model

from helpers import REPO, SCRIPTS, run_outside_repo
from helpers.patentmme import tiny_patentmme
from modeling_patentlmm.configuration_patentmme import PATCH_CLASSES, PatentMMEConfig
from modeling_patentlmm.modeling_patentmme import PatentMMEForPreTraining, encoder_config
from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN, PatentMMEVisualTokenizer

TINY = tiny_patentmme(input_size=64, vocab_size=120, max_position_embeddings=34, max_nodes=4)
P = 16  # (64 / 16) ** 2 patches


def _model(seed: int = 0, **overrides) -> PatentMMEForPreTraining:
    torch.manual_seed(seed)
    return PatentMMEForPreTraining(PatentMMEConfig(**{**TINY, **overrides})).eval()


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two figures: the first with 6 real tokens and 2 nodes, the second with no word (<s></s>, padded) and no
    layout element; masks fixed by hand."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, 120, (2, 8), generator=generator)
    input_ids[:, 0], input_ids[0, 7], input_ids[1, 1], input_ids[1, 2:] = 0, 2, 2, 1
    attention_mask = (input_ids != 1).long()
    corner = torch.randint(0, 900, (2, 8, 2), generator=generator)
    bbox = torch.cat([corner, corner + 50], dim=-1) * attention_mask[..., None]
    mlm_labels = torch.full((2, 8), -100)
    mlm_labels[0, [2, 5]] = input_ids[0, [2, 5]]
    input_ids[0, [2, 5]] = 119  # <mask>
    mim_labels = torch.full((2, P), -100)
    mim_labels[0, [1, 6, 7]] = torch.tensor([3, 60, 3])
    patch_labels = torch.zeros(2, P, len(PATCH_CLASSES))
    patch_labels[0, [1, 2, 5, 6, 7], 0] = 1
    patch_labels[0, [6, 7], 1] = 1
    node_patch_map = torch.zeros(2, 3, P)
    node_patch_map[0, 0, [1, 2, 5, 6]] = 1
    node_patch_map[0, 1, [7]] = 1  # node 2 of the batch is padding for both figures
    tna_labels = torch.full((2, 8), -100)
    tna_labels[0, [1, 2, 3, 6]] = torch.tensor([0, 0, 1, 1])
    return {
        "input_ids": input_ids,
        "bbox": bbox,
        "attention_mask": attention_mask,
        "pixel_values": torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1,
        "mlm_labels": mlm_labels,
        "mim_labels": mim_labels,
        "patch_labels": patch_labels,
        "tna_labels": tna_labels,
        "node_patch_map": node_patch_map,
    }


# ----------------------------------------------------------------------------------------------- config


def test_config_defaults_are_the_authors():
    config = PatentMMEConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.input_size, config.patch_size) == (1024, 24, 384, 16)
    assert (config.num_patches, config.mim_vocab_size, config.max_nodes) == (576, 16385, 25)
    assert (config.mlm_probability, config.mim_probability, config.mim_strategy) == (0.3, 0.4, "layout")
    assert config.patch_classes == list(PATCH_CLASSES)
    assert config.loss_weights == {"mlm": 1.0, "mim": 1.0, "pch": 1.0, "tna": 1.0}
    assert (config.loss_normalisation, config.tna_temperature) == ("original", None)
    assert PatentMMEConfig(loss_weights={"pch": 0, "tna": 0}).enabled_tasks == ("mlm", "mim")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mim_strategy": "block"}, "mim_strategy must be one of ('layout', 'random'), got 'block'"),
        ({"loss_normalisation": "sum"}, "loss_normalisation must be one of ('original', 'masked')"),
        ({"loss_weights": {"tba": 1}}, "loss_weights has unknown task(s) ['tba']"),
        ({"loss_weights": {"mlm": -1}}, "loss_weights must be >= 0"),
        ({"mlm_probability": 1.5}, "mlm_probability must be in [0, 1], got 1.5"),
        ({"tna_temperature": 0}, "tna_temperature must be > 0 or None, got 0"),
        ({"input_size": 100}, "input_size=100 is not a multiple of patch_size=16"),
    ],
)
def test_config_rejects_invalid_values_naming_them(kwargs, message):
    with pytest.raises(ValueError) as error:
        PatentMMEConfig(**kwargs)
    assert message in str(error.value)


# ----------------------------------------------------------------------------------------------- encoder


def test_without_masks_the_hidden_states_equal_layoutlmv3_model():
    model = _model()
    batch = _batch()
    reference = LayoutLMv3Model(encoder_config(model.config)).eval()
    reference.load_state_dict(model.layoutlmv3.state_dict(), strict=True)
    inputs = {k: batch[k] for k in ("input_ids", "bbox", "attention_mask", "pixel_values")}
    with torch.no_grad():
        ours = model(**inputs, output_hidden_states=True)
        theirs = reference(**inputs, output_hidden_states=True)
    assert ours.loss is None and ours.mlm_logits is None
    assert len(ours.hidden_states) == 3
    for mine, expected in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        assert torch.equal(mine, expected)


def test_masked_patches_enter_as_the_mask_token_before_the_position_embeddings():
    model = _model()
    batch = _batch()
    reference = LayoutLMv3Model(encoder_config(model.config)).eval()
    reference.load_state_dict(model.layoutlmv3.state_dict())
    masked = (batch["mim_labels"] != -100)[..., None]
    project = reference.patch_embed.forward
    reference.patch_embed.forward = lambda pixels: torch.where(masked, model.vis_mask_token, project(pixels))
    inputs = {k: batch[k] for k in ("input_ids", "bbox", "attention_mask", "pixel_values")}
    with torch.no_grad():
        ours = model(**inputs, mim_labels=batch["mim_labels"]).last_hidden_state
        theirs = reference(**inputs).last_hidden_state
        unmasked = model(**inputs).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(ours, unmasked)


# ----------------------------------------------------------------------------------------------- losses


def _head(x, head):  # the authors' ProjectorMLP: Linear(h, 2h), GELU, Linear(2h, out)
    first, last = head.proj[0], head.proj[2]
    return F.linear(F.gelu(F.linear(x, first.weight, first.bias)), last.weight, last.bias)


def authors_losses(model, hidden, batch) -> dict[str, torch.Tensor]:
    """The authors' formulas (`patentmme_layoutlmv3.py:945-949, 953-971, 1025-1036`), written again here: per-
    position cross-entropy with -100 giving 0, NaN set to 0, mean over every position; sigmoid + BCE for PCH; TNA
    over cosine similarities of token and patch-mean node embeddings (B, N, T) against the token labels."""
    length = batch["input_ids"].shape[1]
    text, patches = hidden[:, :length], hidden[:, length + 1 :]

    def mean_ce(logits, labels):
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
        loss[torch.isnan(loss)] = 0.0
        return loss.mean()

    vis = _head(patches, model.tna_vis_head)
    txt = _head(text, model.tna_ocr_head)
    node_map = batch["node_patch_map"]
    nodes = (node_map @ vis) / (node_map.sum(-1, keepdim=True) + 1e-6)
    sim = torch.matmul(F.normalize(txt, p=2, dim=-1), F.normalize(nodes, p=2, dim=-1).transpose(1, 2)).permute(0, 2, 1)
    tna = F.cross_entropy(sim, batch["tna_labels"], reduction="none")
    tna[torch.isnan(tna)] = 0.0
    return {
        "mlm": mean_ce(_head(text, model.mlm_head), batch["mlm_labels"]),
        "mim": mean_ce(_head(patches, model.mim_head), batch["mim_labels"]),
        "pch": F.binary_cross_entropy(
            torch.sigmoid(_head(patches, model.patch_cls_linear_head)), batch["patch_labels"]
        ),
        "tna": tna.mean(),
    }


def test_each_loss_equals_the_authors_formula_with_original_normalisation():
    model = _model()
    batch = _batch()
    with torch.no_grad():
        output = model(**batch)
        expected = authors_losses(model, output.last_hidden_state, batch)
    for task, value in expected.items():
        assert abs(float(getattr(output, f"{task}_loss")) - float(value)) < 1e-6, task
    assert abs(float(output.loss) - float(sum(expected.values()))) < 1e-5
    assert output.mlm_logits.shape == (2, 8, 120) and output.mim_logits.shape == (2, P, 65)
    assert output.pch_logits.shape == (2, P, 5) and output.tna_logits.shape == (2, 8, 3)


def test_masked_normalisation_weights_and_temperature():
    batch = _batch()
    model = _model(loss_normalisation="masked", loss_weights={"pch": 0, "tna": 0.5}, tna_temperature=0.1)
    with torch.no_grad():
        output = model(**batch)
    masked = batch["mlm_labels"] != -100
    mlm = F.cross_entropy(output.mlm_logits[masked], batch["mlm_labels"][masked])
    assert abs(float(output.mlm_loss) - float(mlm)) < 1e-6
    own_nodes = output.tna_logits[0][:, :2]  # figure 0's two nodes; the padding node is left out
    labelled = batch["tna_labels"][0] != -100
    tna = F.cross_entropy(own_nodes[labelled], batch["tna_labels"][0][labelled])
    assert abs(float(output.tna_loss) - float(tna)) < 1e-6
    assert float(output.tna_logits.abs().max()) > 1.0  # similarities / 0.1
    assert output.pch_loss is None and output.pch_logits is None
    assert abs(float(output.loss) - float(output.mlm_loss + output.mim_loss + 0.5 * output.tna_loss)) < 1e-6


def test_a_batch_with_nothing_to_learn_skips_those_losses_and_still_backpropagates():
    model = _model().train()
    batch = _batch()
    empty = {**batch, "mlm_labels": torch.full_like(batch["mlm_labels"], -100)}
    empty["mim_labels"] = torch.full_like(batch["mim_labels"], -100)
    empty["tna_labels"] = torch.full_like(batch["tna_labels"], -100)
    output = model(**empty)
    assert output.mlm_loss is None and output.mim_loss is None and output.tna_loss is None
    assert torch.isfinite(output.loss) and torch.equal(output.loss, output.pch_loss)
    no_nodes = model(**{**empty, "node_patch_map": torch.zeros(2, 0, P), "patch_labels": None})
    assert no_nodes.tna_loss is None and float(no_nodes.loss) == 0.0
    no_nodes.loss.backward()  # a zero that still reaches the encoder


# ----------------------------------------------------------------------------------------------- save / load


def _saved(tmp_path):
    model = _model(seed=1)
    model.save_pretrained(tmp_path / "model")
    tokenizer = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=64)
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    batch = _batch()
    save_file(batch, tmp_path / "inputs.safetensors")
    return model, tokenizer, batch


def test_save_and_load_through_the_auto_classes_with_remote_code(tmp_path):
    model, _, batch = _saved(tmp_path)
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["model_type"] == "patentmme" and saved["auto_map"]["AutoModelForPreTraining"].endswith(
        "PatentMMEForPreTraining"
    )
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"model.safetensors", "configuration_patentmme.py", "modeling_patentmme.py"} <= files
    assert "build_vision_tower" in (tmp_path / "model" / "modeling_patentlmm.py").read_text()
    assert type(AutoConfig.from_pretrained(tmp_path / "model", trust_remote_code=True)).__name__ == "PatentMMEConfig"
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "model", trust_remote_code=True).eval()
    with torch.no_grad():
        expected, got = model(**batch), loaded(**batch)
    assert torch.equal(expected.last_hidden_state, got.last_hidden_state)
    assert torch.equal(expected.loss, got.loss)


def test_transformers4_loads_the_saved_folder_and_tokenizer(tmp_path, transformers4_python):
    model, tokenizer, batch = _saved(tmp_path)
    shutil.copytree(REPO / "modeling_patentlmm", tmp_path / "package" / "modeling_patentlmm")
    out = run_outside_repo(
        transformers4_python,
        SCRIPTS / "load_patentmme.py",
        str(tmp_path / "model"),
        str(tmp_path / "inputs.safetensors"),
        str(tmp_path / "outputs.safetensors"),
        str(tmp_path / "package"),
        str(tmp_path / "tokenizer"),
    )
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert lines[0] == {"fingerprint": tokenizer.fingerprint}
    assert lines[1]["transformers"].startswith("4.") and lines[1]["model"].endswith("PatentMMEForPreTraining")
    outputs = load_file(tmp_path / "outputs.safetensors")
    with torch.no_grad():
        expected = model(**batch)
    torch.testing.assert_close(outputs["last_hidden_state"], expected.last_hidden_state, atol=1e-5, rtol=1e-5)
    for task in ("mlm", "mim", "pch", "tna"):
        torch.testing.assert_close(outputs[f"{task}_loss"], getattr(expected, f"{task}_loss"), atol=1e-5, rtol=1e-5)
    assert torch.equal(outputs["visual_tokens"], tokenizer.encode(batch["pixel_values"]))
