"""PatentMMEVisualTokenizer: ids equal a reference taming encode, seeded stand-in, taming checkpoints, save/load."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import FIGURES
from modeling_patentlmm.visual_tokenizer_patentmme import (
    OCR_VQGAN_F16_16384,
    TINY_VQGAN,
    PatentMMEVisualTokenizer,
    taming_vq_config,
)

FIGURE_IDS = ("US20250204297A1__8", "US20250204297A1__12")


def _images() -> list[Image.Image]:
    return [Image.open(FIGURES / f"{name}.png") for name in FIGURE_IDS]


# A taming VQModel encode (`taming/models/vqgan.py` encode -> `Encoder`, `quant_conv`, `VectorQuantizer2`) written
# from the taming layout with functional ops on the state dict, independent of transformers' Chameleon modules.
def _norm_swish(x, sd, name, swish=True):
    x = F.group_norm(x, 32, sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)
    return x * torch.sigmoid(x) if swish else x


def _conv(x, sd, name, stride=1, padding=1):
    return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=stride, padding=padding)


def _resnet(x, sd, name):
    h = _conv(_norm_swish(x, sd, f"{name}.norm1"), sd, f"{name}.conv1")
    h = _conv(_norm_swish(h, sd, f"{name}.norm2"), sd, f"{name}.conv2")
    if f"{name}.nin_shortcut.weight" in sd:
        x = _conv(x, sd, f"{name}.nin_shortcut", padding=0)
    return x + h


def _attention(x, sd, name):
    h = _norm_swish(x, sd, f"{name}.norm", swish=False)
    b, c, height, width = h.shape
    q, k, v = (_conv(h, sd, f"{name}.{p}", padding=0).reshape(b, c, -1) for p in "qkv")
    weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / c**0.5, dim=-1)  # (b, i, j)
    out = torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, height, width)
    return x + _conv(out, sd, f"{name}.proj_out", padding=0)


def reference_taming_encode(sd: dict, pixel_values: torch.Tensor) -> torch.Tensor:
    x = _conv(pixel_values, sd, "encoder.conv_in")
    level = 0
    while f"encoder.down.{level}.block.0.conv1.weight" in sd:
        block = 0
        while f"encoder.down.{level}.block.{block}.conv1.weight" in sd:
            x = _resnet(x, sd, f"encoder.down.{level}.block.{block}")
            if f"encoder.down.{level}.attn.{block}.q.weight" in sd:
                x = _attention(x, sd, f"encoder.down.{level}.attn.{block}")
            block += 1
        if f"encoder.down.{level}.downsample.conv.weight" in sd:
            x = _conv(F.pad(x, (0, 1, 0, 1)), sd, f"encoder.down.{level}.downsample.conv", stride=2, padding=0)
        level += 1
    x = _resnet(x, sd, "encoder.mid.block_1")
    x = _attention(x, sd, "encoder.mid.attn_1")
    x = _resnet(x, sd, "encoder.mid.block_2")
    x = _conv(_norm_swish(x, sd, "encoder.norm_out"), sd, "encoder.conv_out")
    z = _conv(x, sd, "quant_conv", padding=0)  # (B, D, h, w)
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    codes = sd["quantize.embedding.weight"].double()
    return torch.cdist(flat, codes).argmin(dim=1).view(z.shape[0], -1)


def _taming_state_dict(tokenizer: PatentMMEVisualTokenizer) -> dict[str, torch.Tensor]:
    """The tokenizer's weights in a taming VQModel's layout, with the decoder and loss keys a checkpoint also has."""
    sd = {k: v.clone() for k, v in tokenizer.vqvae.state_dict().items()}
    sd["decoder.conv_in.weight"] = torch.zeros(4, 8, 3, 3)
    sd["post_quant_conv.weight"] = torch.zeros(8, 8, 1, 1)
    sd["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)
    return sd


@pytest.mark.parametrize("image_size", [64, 384])
def test_ids_equal_a_reference_taming_encode(image_size):
    tokenizer = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=image_size)
    pixel_values = tokenizer.preprocess(_images())
    assert pixel_values.shape == (2, 3, image_size, image_size)
    assert -1.0 <= float(pixel_values.min()) and float(pixel_values.max()) <= 1.0
    ids = tokenizer.encode(pixel_values)
    assert ids.dtype == torch.long and ids.shape == (2, (image_size // 16) ** 2) == (2, tokenizer.num_tokens)
    expected = reference_taming_encode(tokenizer.vqvae.state_dict(), pixel_values)
    assert torch.equal(ids, expected)
    assert len(ids.unique()) > 1  # a stand-in that maps everything to one code would teach nothing


def test_random_is_seeded_and_the_fingerprint_tells_tokenizers_apart():
    first, again = PatentMMEVisualTokenizer.random(0, TINY_VQGAN), PatentMMEVisualTokenizer.random(0, TINY_VQGAN)
    assert first.fingerprint == again.fingerprint and len(first.fingerprint) == 16
    assert PatentMMEVisualTokenizer.random(1, TINY_VQGAN).fingerprint != first.fingerprint
    assert PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=64).fingerprint != first.fingerprint
    weights = dict(first.vqvae.named_parameters())
    assert abs(float(weights["encoder.conv_in.weight"].std()) - 0.02) < 0.004
    assert float(weights["encoder.conv_in.bias"].abs().max()) == 0.0


def test_save_and_load_round_trip(tmp_path):
    tokenizer = PatentMMEVisualTokenizer.random(3, TINY_VQGAN, image_size=64)
    tokenizer.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "visual_tokenizer.safetensors",
        "visual_tokenizer_config.json",
    ]
    loaded = PatentMMEVisualTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.fingerprint == tokenizer.fingerprint and loaded.image_size == 64
    pixel_values = tokenizer.preprocess(_images())
    assert torch.equal(loaded.encode(pixel_values), tokenizer.encode(pixel_values))
    with pytest.raises(FileNotFoundError, match="is not a visual tokenizer folder"):
        PatentMMEVisualTokenizer.from_pretrained(tmp_path)


def test_taming_checkpoint_loads_with_its_architecture_read_off_the_shapes(tmp_path):
    tokenizer = PatentMMEVisualTokenizer.random(5, TINY_VQGAN, image_size=64)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": _taming_state_dict(tokenizer), "epoch": 3, "global_step": 1200}, path)
    loaded = PatentMMEVisualTokenizer.from_taming_checkpoint(path, image_size=64)
    assert loaded.vq_config == TINY_VQGAN
    assert loaded.fingerprint == tokenizer.fingerprint


def test_the_ocr_vqgan_architecture_is_read_off_its_shapes():
    state_dict = PatentMMEVisualTokenizer(OCR_VQGAN_F16_16384).vqvae.state_dict()
    assert taming_vq_config(state_dict) == OCR_VQGAN_F16_16384


class _NotAllowed:
    pass


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pickle", "not readable as a weights-only checkpoint (UnpicklingError)"),
        ("list", "holds a list, not a state dict"),
        ("no_quantizer", "not a taming VQGAN state dict (encoder.*, quant_conv.*, quantize.*): missing"),
        ("wrong_shape", "not a taming VQGAN: missing [], wrong shapes ['encoder.conv_in.bias']"),
    ],
)
def test_a_checkpoint_that_is_no_taming_vqgan_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "last.ckpt"
    sd = _taming_state_dict(PatentMMEVisualTokenizer.random(0, TINY_VQGAN))
    if content == "pickle":
        path.write_bytes(pickle.dumps({"state_dict": _NotAllowed()}))
    elif content == "list":
        torch.save([1, 2], path)
    elif content == "no_quantizer":
        torch.save({"state_dict": {k: v for k, v in sd.items() if not k.startswith("quantize.")}}, path)
    else:
        torch.save({"state_dict": {**sd, "encoder.conv_in.bias": torch.zeros(7)}}, path)
    with pytest.raises(ValueError) as error:
        PatentMMEVisualTokenizer.from_taming_checkpoint(path)
    assert message in str(error.value) and "\n" not in str(error.value) and str(path) in str(error.value)


def test_encode_rejects_pixel_values_off_the_grid():
    tokenizer = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=64)
    with pytest.raises(ValueError, match=r"pixel_values of shape \(1, 3, 64, 60\): expected \(B, 3, H, W\)"):
        tokenizer.encode(torch.zeros(1, 3, 64, 60))
