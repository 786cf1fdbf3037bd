"""`patentlmm convert-patentmme`: checkpoints in the authors' key layout -> encoders equal to a hand load, heads kept,
dead heads dropped, the VQGAN exported and judged, the encoder compared, bad checkpoints refused in one line."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LayoutLMv3Model

from helpers.patentmme import tiny_patentmme
from modeling_patentlmm import PatentMMEConfig, PatentMMEForPreTraining, PatentMMEVisualTokenizer
from modeling_patentlmm.modeling_patentmme import encoder_config
from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN
from patentlmm.assembly.tiny import build_ocr_tokenizer
from patentlmm.cli import main as cli

TINY = tiny_patentmme(input_size=64, vocab_size=120, max_position_embeddings=34)
HEADS = ("mlm_head", "mim_head", "patch_cls_linear_head", "tna_ocr_head", "tna_vis_head")


def authors_state(rows: int = 197, trained_vqgan: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """A Lightning `state_dict` laid out as the authors' PatentMME module (`model.` + LayoutLMv3 names, heads'
    `proj.0`/`proj.2`, `vis_mask_token`, `tba_linear_head`, `vqgan.*`), with a `rows`-row pos_embed."""
    torch.manual_seed(seed)
    model = PatentMMEForPreTraining(PatentMMEConfig(**TINY))
    state = {f"model.{k.removeprefix('layoutlmv3.')}": v.clone() for k, v in model.state_dict().items()}
    state["model.pos_embed"] = torch.randn(1, rows, 48) * 0.02
    state["model.tba_linear_head.proj.0.weight"] = torch.randn(96, 48)
    state["model.tba_linear_head.proj.2.weight"] = torch.randn(26, 96)
    vqgan = PatentMMEVisualTokenizer.random(seed, TINY_VQGAN, image_size=64).vqvae.state_dict()
    for name, tensor in vqgan.items():
        if trained_vqgan:
            tensor = tensor * 3 + (0.01 if name.endswith(".bias") else 0.0)
        state[f"model.vqgan.{name}"] = tensor
    state["model.vqgan.decoder.conv_in.weight"] = torch.zeros(8, 8, 3, 3)  # the taming decoder is ignored
    return state


def _write(tmp_path, state, name="last.ckpt"):
    path = tmp_path / name
    torch.save({"state_dict": state, "epoch": 7, "global_step": 9000}, path)
    return path


def hand_loaded_encoder(state: dict[str, torch.Tensor], size: int = 64) -> LayoutLMv3Model:
    """The authors' encoder loaded by hand: `model.*` minus the heads, and pos_embed's 14 x 14 patch rows resized to
    the grid of `size`-px figures as their forward does at each call (bicubic, CLS row as is)."""
    encoder = LayoutLMv3Model(encoder_config(PatentMMEConfig(**{**TINY, "input_size": size}))).eval()
    cells = size // 16
    wanted = set(encoder.state_dict())
    weights = {k[6:]: v for k, v in state.items() if k[6:] in wanted}
    pos = state["model.pos_embed"]
    side = int((pos.shape[1] - 1) ** 0.5)
    grid = pos[:, 1:].view(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(cells, cells), mode="bicubic").permute(0, 2, 3, 1).reshape(1, cells**2, -1)
    weights["pos_embed"] = torch.cat([pos[:, :1], resized], dim=1)
    encoder.load_state_dict(weights, strict=True)
    return encoder


def _inputs(size: int = 64):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 120, (2, 6), generator=generator)
    corner = torch.randint(0, 900, (2, 6, 2), generator=generator)
    pixel_values = torch.randn(2, 3, size, size, generator=generator)
    return {"input_ids": ids, "bbox": torch.cat([corner, corner + 40], -1), "pixel_values": pixel_values}


@pytest.mark.parametrize(("rows", "size"), [(197, 64), (17, 64), (197, 384), (577, 384)])
def test_the_converted_encoder_equals_the_authors_loaded_by_hand(tmp_path, capsys, rows, size):
    """197 rows: the authors' 14 x 14 pos_embed; 17 and 577: one already on the figures' grid (64 and 384 px)."""
    state = authors_state(rows)
    cli(["convert-patentmme", "--checkpoint", str(_write(tmp_path, state)), "--output", str(tmp_path / "out"),
         "--input-size", str(size)])  # fmt: skip
    printed = capsys.readouterr().out
    target = (size // 16) ** 2 + 1
    assert (
        f"pos_embed: {rows} rows -> {target} (bicubic, once)." if rows != target else f"{rows} rows, kept."
    ) in printed
    model = PatentMMEForPreTraining.from_pretrained(tmp_path / "out").eval()
    encoder = LayoutLMv3Model.from_pretrained(tmp_path / "out" / "encoder").eval()
    expected = hand_loaded_encoder(state, size)
    with torch.no_grad():
        reference = expected(**_inputs(size), output_hidden_states=True).hidden_states
        for converted in (model.layoutlmv3, encoder):
            hidden = converted(**_inputs(size), output_hidden_states=True).hidden_states
            for mine, theirs in zip(hidden, reference, strict=True):
                torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-6)
    for head in HEADS:
        for index in (0, 2):
            for kind in ("weight", "bias"):
                source = state[f"model.{head}.proj.{index}.{kind}"]
                assert torch.equal(getattr(model, head).proj[index].get_parameter(kind), source)
    assert torch.equal(model.vis_mask_token, state["model.vis_mask_token"])


def test_dead_heads_are_dropped_and_the_vqgan_is_exported_and_judged(tmp_path, capsys):
    state = authors_state()
    cli(["convert-patentmme", "--checkpoint", str(_write(tmp_path, state)), "--output", str(tmp_path / "out"),
         "--input-size", "64"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "Dropped 2 tensors of dead heads (no loss reads them): model.tba_linear_head.proj.0.weight" in printed
    assert "VQGAN: LOOKS RANDOMLY INITIALISED" in printed and "100% of conv biases exactly 0" in printed
    assert "No --ocr-tokenizer: encoder/ holds no OCR tokenizer" in printed
    tokenizer = PatentMMEVisualTokenizer.from_pretrained(tmp_path / "out" / "visual_tokenizer")
    expected = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=64)
    assert tokenizer.fingerprint == expected.fingerprint
    assert not any(k.startswith(("tba", "vqgan")) for k in PatentMMEForPreTraining.from_pretrained(
        tmp_path / "out").state_dict())  # fmt: skip

    cli(["convert-patentmme", "--checkpoint", str(_write(tmp_path, authors_state(trained_vqgan=True), "t.ckpt")),
         "--output", str(tmp_path / "trained"), "--input-size", "64"])  # fmt: skip
    assert "VQGAN: looks trained" in capsys.readouterr().out


def test_the_report_says_whether_the_encoder_layers_differ_from_a_layoutlmv3(tmp_path, capsys):
    state = authors_state()
    start = hand_loaded_encoder(state)
    start.save_pretrained(tmp_path / "layoutlmv3")
    checkpoint = _write(tmp_path, state)
    arguments = ["convert-patentmme", "--checkpoint", str(checkpoint), "--input-size", "64"]
    build_ocr_tokenizer().save_pretrained(tmp_path / "ocr-tokenizer")
    cli([*arguments, "--output", str(tmp_path / "a"), "--compare-to", str(tmp_path / "layoutlmv3"),
         "--ocr-tokenizer", str(tmp_path / "ocr-tokenizer")])  # fmt: skip
    printed = capsys.readouterr().out
    assert "layer tensors EQUAL" in printed and "No --ocr-tokenizer" not in printed
    for folder in (tmp_path / "a", tmp_path / "a" / "encoder"):  # stage 1 reads the encoder's own tokenizer
        assert AutoTokenizer.from_pretrained(folder).mask_token == "<mask>"
    state["model.encoder.layer.1.output.dense.weight"] = state["model.encoder.layer.1.output.dense.weight"] + 0.5
    cli([*arguments[:2], str(_write(tmp_path, state, "b.ckpt")), *arguments[3:], "--output", str(tmp_path / "b"),
         "--compare-to", str(tmp_path / "layoutlmv3")])  # fmt: skip
    assert "Encoder: 1 of 32 layer tensors differ from" in capsys.readouterr().out


class _Anything:
    pass


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("pickle", "it is not a torch.save checkpoint of tensors (a plain pickle?)"),
        ("no_state_dict", "has no 'state_dict' entry"),
        ("missing_head", "not a PatentMME checkpoint: missing 'mim_head.proj.2.weight'"),
        ("wrong_shape", "wrong shapes layoutlmv3.encoder.layer.0.output.dense.bias (7,) != (48,)"),
        ("stranger", "unexpected optimizer.step"),
    ],
)
def test_a_checkpoint_that_is_no_patentmme_is_a_one_line_error(tmp_path, damage, message):
    path = tmp_path / "last.ckpt"
    state = authors_state()
    if damage == "pickle":
        path.write_bytes(pickle.dumps({"state_dict": _Anything()}))
    elif damage == "no_state_dict":
        torch.save(state, path)
    else:
        if damage == "missing_head":
            state = {k: v for k, v in state.items() if not k.startswith("model.mim_head.")}
        elif damage == "wrong_shape":
            state["model.encoder.layer.0.output.dense.bias"] = torch.zeros(7)
        else:
            state["optimizer.step"] = torch.zeros(1)
        _write(tmp_path, state)
    with pytest.raises(SystemExit) as error:
        cli(["convert-patentmme", "--checkpoint", str(path), "--output", str(tmp_path / "out"), "--input-size", "64"])
    text = str(error.value)
    assert text.startswith("patentlmm convert-patentmme: ") and message in text and "\n" not in text
    assert not (tmp_path / "out").exists()
