"""PatentMMEVisualTokenizer: the VQGAN (taming VQModel encoder + quantizer) that gives PatentMME's MIM targets."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from transformers import ChameleonVQVAEConfig, LayoutLMv3ImageProcessor
from transformers.models.chameleon.modeling_chameleon import ChameleonVQVAE

__all__ = [
    "OCR_VQGAN_F16_16384",
    "TINY_VQGAN",
    "PatentMMEVisualTokenizer",
    "figure_pixel_values",
    "taming_vq_config",
]

# The OCR-VQGAN the authors point their MIM at (`PatentMME/configs/ocr-vqgan-f16-c16384-d256.yaml:5-23`): a taming
# VQModel with 5 levels (f16), 16,384 codes of 256 dimensions, attention at the 16-px level.
OCR_VQGAN_F16_16384: dict[str, Any] = {
    "embed_dim": 256,
    "num_embeddings": 16384,
    "latent_channels": 256,
    "base_channels": 128,
    "channel_multiplier": [1, 1, 2, 2, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [16],
    "resolution": 256,
    "in_channels": 3,
    "double_latent": False,
    "dropout": 0.0,
}
# Same geometry (f16, attention at the last level), small enough for tests: 64 codes of 8 dimensions.
TINY_VQGAN: dict[str, Any] = {
    **OCR_VQGAN_F16_16384,
    "embed_dim": 8,
    "num_embeddings": 64,
    "latent_channels": 8,
    "base_channels": 32,
    "channel_multiplier": [1, 1, 1, 1, 1],
    "num_res_blocks": 1,
}
VQ_FIELDS = tuple(OCR_VQGAN_F16_16384)
CONFIG_NAME = "visual_tokenizer_config.json"
WEIGHTS_NAME = "visual_tokenizer.safetensors"
TAMING_PREFIXES = ("encoder.", "quant_conv.", "quantize.")


def figure_pixel_values(images: list[Image.Image], image_size: int) -> torch.FloatTensor:
    """The figures as PatentMME pretraining sees them, `(B, 3, image_size, image_size)` in [-1, 1]: RGB, resized
    (bilinear, no padding) and normalised with mean = std = 0.5 by `LayoutLMv3ImageProcessor`, as the authors feed
    both the encoder and the VQGAN (`PatentMME/model.py:9,17,45`, `patentmme_layoutlmv3.py:892`)."""
    processor = LayoutLMv3ImageProcessor(apply_ocr=False, size={"height": image_size, "width": image_size})
    return processor([image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]


def taming_vq_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The VQGAN architecture (`VQ_FIELDS`) read off the shapes of a taming state dict (keys without a prefix)."""
    try:
        base = state_dict["encoder.conv_in.weight"].shape[0]
        levels = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
        blocks = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
        multipliers = [state_dict[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // base for i in range(levels)]
        embed_dim, latent = state_dict["quant_conv.weight"].shape[:2]
        num_embeddings = state_dict["quantize.embedding.weight"].shape[0]
        conv_out = state_dict["encoder.conv_out.weight"].shape[0]
    except (KeyError, ValueError) as error:  # ValueError: max() of no key
        raise ValueError(
            f"not a taming VQGAN state dict (encoder.*, quant_conv.*, quantize.*): missing {error}"
        ) from None
    top = 16 * 2 ** (levels - 1)  # taming's resolution only decides which levels attend: level i runs at top / 2**i
    attends = [i for i in range(levels) if f"encoder.down.{i}.attn.0.q.weight" in state_dict]
    return {
        **OCR_VQGAN_F16_16384,
        "embed_dim": int(embed_dim),
        "num_embeddings": int(num_embeddings),
        "latent_channels": int(latent),
        "base_channels": int(base),
        "channel_multiplier": multipliers,
        "num_res_blocks": blocks,
        "attn_resolutions": [top // 2**i for i in attends],
        "resolution": top,
        "double_latent": conv_out == 2 * latent,
    }


class PatentMMEVisualTokenizer(nn.Module):
    """Figures -> visual-token ids: the encoder, `quant_conv` and nearest-code quantizer of a taming VQGAN, held as
    transformers' `ChameleonVQVAE` (the same modules under the same names; its decoder-side `post_quant_conv` is
    unused). `encode` maps `(B, 3, H, W)` in [-1, 1] to `(B, (H / f) * (W / f))` ids, f = 2 ** (levels - 1) = 16:
    `(B, 576)` at 384 px, row-major over the patch grid, as `patentmme_layoutlmv3.py:892-893` reads them.

    Args:
        vq_config (`dict`): the architecture fields `VQ_FIELDS` (`OCR_VQGAN_F16_16384`, `TINY_VQGAN`).
        image_size (`int`, defaults to 384): the figure side `preprocess` resizes to.
    """

    def __init__(self, vq_config: dict[str, Any] | None = None, image_size: int = 384):
        super().__init__()
        self.vq_config = {key: (vq_config or OCR_VQGAN_F16_16384)[key] for key in VQ_FIELDS}
        self.image_size = image_size
        if image_size % self.downsampling:
            raise ValueError(f"image_size={image_size} is not a multiple of the VQGAN's factor {self.downsampling}.")
        self.vqvae = ChameleonVQVAE(ChameleonVQVAEConfig(**self.vq_config)).eval().requires_grad_(False)
        del self.vqvae.post_quant_conv  # decoder side, never read

    @property
    def downsampling(self) -> int:
        """Pixels per visual token along each side (16 for f16)."""
        return 2 ** (len(self.vq_config["channel_multiplier"]) - 1)

    @property
    def num_embeddings(self) -> int:
        """Codebook size; the MIM head predicts `num_embeddings + 1` classes, as the authors' (`model.py` via
        `patentmme_layoutlmv3.py:805`)."""
        return self.vq_config["num_embeddings"]

    @property
    def num_tokens(self) -> int:
        """Ids per figure: `(image_size / downsampling) ** 2`."""
        return (self.image_size // self.downsampling) ** 2

    @property
    def fingerprint(self) -> str:
        """A stable hash of the architecture, `image_size` and every weight: caches keyed by it refuse ids from
        another tokenizer or image size."""
        digest = hashlib.sha256(json.dumps(self._config(), sort_keys=True).encode())
        for name, tensor in sorted(self._weights().items()):
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def _config(self) -> dict[str, Any]:
        return {"vq_config": self.vq_config, "image_size": self.image_size}

    def _weights(self) -> dict[str, torch.Tensor]:
        return {name: tensor for name, tensor in self.vqvae.state_dict().items()}

    @classmethod
    def random(cls, seed: int, config: dict[str, Any] | None = None, image_size: int = 384) -> PatentMMEVisualTokenizer:
        """A seeded random tokenizer, the documented offline stand-in: conv weights and codes ~ N(0, 0.02), conv biases
        0, GroupNorms 1 / 0, which is what LayoutLMv3's `_init_weights` (`patentmme_layoutlmv3.py:396-410`) makes of a
        VQGAN built inside the model's `__init__` (`patentmme_layoutlmv3.py:797-801`): very likely the authors' run."""
        tokenizer = cls(config, image_size)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, tensor in sorted(tokenizer.vqvae.named_parameters()):
                if name.endswith(".bias"):
                    tensor.zero_()
                elif tensor.dim() == 1:  # GroupNorm scale
                    tensor.fill_(1.0)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.02)
        return tokenizer

    @classmethod
    def from_state_dict(
        cls, state_dict: dict[str, torch.Tensor], image_size: int = 384, source: str = "state dict"
    ) -> PatentMMEVisualTokenizer:
        """From taming keys `encoder.*`, `quant_conv.*`, `quantize.*` (others, e.g. `decoder.*`, `loss.*`, ignored)."""
        wanted = {k: v for k, v in state_dict.items() if k.startswith(TAMING_PREFIXES)}
        try:
            tokenizer = cls(taming_vq_config(wanted), image_size)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        expected = tokenizer.vqvae.state_dict()
        missing = sorted(set(expected) - set(wanted))
        wrong = [k for k in expected if k in wanted and wanted[k].shape != expected[k].shape]
        if missing or wrong:
            raise ValueError(f"{source}: not a taming VQGAN: missing {missing[:3]}, wrong shapes {wrong[:3]}")
        tokenizer.vqvae.load_state_dict({k: wanted[k] for k in expected}, strict=True)
        return tokenizer

    @classmethod
    def from_taming_checkpoint(cls, path: str | os.PathLike, image_size: int = 384) -> PatentMMEVisualTokenizer:
        """From a taming / Lightning `last.ckpt` (its `state_dict`), read with `torch.load(weights_only=True)`."""
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unpickling failure is one message
            raise ValueError(f"{path}: not readable as a weights-only checkpoint ({type(error).__name__})") from None
        state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state_dict, dict):
            raise ValueError(f"{path}: holds a {type(checkpoint).__name__}, not a state dict")
        return cls.from_state_dict(state_dict, image_size, source=str(path))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Writes `visual_tokenizer_config.json` and `visual_tokenizer.safetensors` into `folder`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self._weights().items()}, folder / WEIGHTS_NAME)
        (folder / CONFIG_NAME).write_text(json.dumps(self._config(), indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> PatentMMEVisualTokenizer:
        """Loads what `save_pretrained` wrote."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(f"{folder} is not a visual tokenizer folder (needs {CONFIG_NAME}, {WEIGHTS_NAME}).")
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        tokenizer = cls(config["vq_config"], config["image_size"])
        tokenizer.vqvae.load_state_dict(load_file(folder / WEIGHTS_NAME), strict=True)
        return tokenizer

    def preprocess(self, images: list[Image.Image]) -> torch.FloatTensor:
        """`(B, 3, image_size, image_size)` pixel values in [-1, 1]: see `figure_pixel_values`."""
        return figure_pixel_values(images, self.image_size)

    @torch.no_grad()
    def encode(self, pixel_values: torch.FloatTensor) -> torch.LongTensor:
        """`(B, 3, H, W)` in [-1, 1] -> `(B, (H / 16) * (W / 16))` code ids (the nearest code of each position)."""
        if pixel_values.dim() != 4 or pixel_values.shape[1] != 3 or pixel_values.shape[-1] % self.downsampling:
            raise ValueError(
                f"pixel_values of shape {tuple(pixel_values.shape)}: expected (B, 3, H, W) with H, W multiples of "
                f"{self.downsampling}."
            )
        weight = self.vqvae.quant_conv.weight
        hidden = self.vqvae.encoder(pixel_values.to(weight.device, weight.dtype))
        _, _, indices = self.vqvae.quantize(self.vqvae.quant_conv(hidden))  # indices: (B * h * w,)
        return indices.view(pixel_values.shape[0], -1)
