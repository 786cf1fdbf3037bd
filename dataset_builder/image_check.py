"""`prepare_image`: one figure file checked and made ready to embed (its PNG bytes kept, or converted and noted)."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from processing.constants import DEFAULT_MAX_IMAGE_PIXELS
from processing.images import load_image

from .reports import frames_note

__all__ = ["KEPT_PNG_MODES", "PreparedImage", "prepare_image"]

KEPT_PNG_MODES = ("1", "L", "RGB")  # PNGs in these modes are embedded unchanged


@dataclass(frozen=True)
class PreparedImage:
    """A checked image: the PNG bytes to embed, or the reason it cannot be used; `note` when it was converted."""

    png: bytes | None = None
    error: str | None = None
    note: str | None = None


def prepare_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> PreparedImage:
    """Reads and checks one image file -> the PNG bytes to embed, or why not (naming the file).

    A PNG in a mode of `KEPT_PNG_MODES` is embedded byte for byte (patent drawings are mostly 1-bit: re-encoding
    them as RGB would triple them for nothing); anything else (palette, alpha, 16-bit, CMYK, a JPEG or TIFF named
    `.png`, an animated or multi-page image: its first frame) is converted to 8-bit RGB as the processor would and
    re-encoded as PNG, with a `note`. Whatever a decoder raises on a damaged file (`SyntaxError`, `IndexError`,
    `RuntimeError`, ...) is that file's error, never the run's."""
    path = Path(path)
    name = f"{path.parent.name}/{path.name}"
    if not path.is_file():
        return PreparedImage(error=f"image file {name} is missing (run `download` first)")
    data = path.read_bytes()
    if not data:
        return PreparedImage(error=f"the image file {name} is empty (0 bytes)")
    try:
        rgb = load_image(data, max_pixels=max_pixels)  # checks the pixel cap first, then decodes every pixel
        with warnings.catch_warnings():  # under our cap now; Pillow's own (lower) warning level is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                image_format, mode, frames = header.format, header.mode, frames_note(header)
    except UnidentifiedImageError:
        return PreparedImage(error=f"{name} is not an image: Pillow cannot identify the file's format")
    except Exception as error:  # noqa: BLE001 (ImageTooLargeError, a damaged file: whatever its decoder raises)
        return PreparedImage(error=f"invalid image {name}: {type(error).__name__}: {error}")
    if image_format == "PNG" and mode in KEPT_PNG_MODES and frames is None:
        return PreparedImage(png=data)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    note = f"{image_format} image in mode {mode} re-encoded as RGB PNG" + (f"; {frames}" if frames else "")
    return PreparedImage(png=buffer.getvalue(), note=note)
