"""Pure image helpers: open safely, convert any mode to RGB, pad to a square."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
from PIL import Image

from .constants import DEFAULT_MAX_IMAGE_PIXELS

__all__ = [
    "ImageInput",
    "ImageTooLargeError",
    "decode_image",
    "expand_to_square",
    "load_image",
    "open_image",
    "to_rgb",
]

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


_PILLOW_CAP_LOCK = threading.Lock()


class ImageTooLargeError(ValueError):
    """An image, padded to a square, has more pixels than the configured cap (a guard against decompression bombs)."""


def _check_size(width: int, height: int, max_pixels: int | None, name: str) -> None:
    """The cap bounds the square the processor pads every figure to (`expand_to_square`): max(W, H)^2 pixels, so
    that a 1 x 30000 strip, 30,000 pixels as it comes, cannot become a 900-megapixel square."""
    side = max(width, height)
    if max_pixels is not None and side * side > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height}: padded to a square it is {side}x{side} = {side * side:,} pixels, over the "
            f"cap of {max_pixels:,} (a guard against decompression bombs). Downscale it, or raise max_image_pixels "
            "if you trust it."
        )


def load_image(image: ImageInput, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Returns `image` as an RGB `PIL.Image`, checking its size (padded to a square) before any pixel is decoded.

    Accepts a path, encoded bytes, a `PIL.Image` or an `(H, W)` / `(H, W, C)` uint8 array.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        _check_size(*image.size, max_pixels, "The image")
        return to_rgb(image)
    return to_rgb(decode_image(image, max_pixels))


def _name(source: str | os.PathLike | bytes) -> str:
    """How error messages name an image source."""
    return "The image bytes" if isinstance(source, bytes) else f"Image {os.fspath(source)!r}"


def open_image(source: str | os.PathLike | bytes, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Opens an image file or encoded bytes, reading its header only, and checks its size against the pixel cap.

    Raises `ImageTooLargeError` over the cap, `PIL.UnidentifiedImageError` for non-images.
    """
    if isinstance(source, bytes):
        stream = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        stream = os.fspath(source)
    else:
        raise TypeError(f"Unsupported image type {type(source).__name__}: pass a path, bytes, PIL.Image or array.")
    # Our own cap replaces Pillow's global one (which would warn or raise with another message) while we open the
    # header; the lock keeps concurrent calls from restoring each other's value.
    with _PILLOW_CAP_LOCK:
        previous_cap, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            opened = Image.open(stream)  # reads the header only
        finally:
            Image.MAX_IMAGE_PIXELS = previous_cap
    try:
        _check_size(*opened.size, max_pixels, _name(source))
    except ImageTooLargeError:
        opened.close()
        raise
    return opened


def decode_image(source: str | os.PathLike | bytes, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Decodes an image file or encoded bytes in its own mode, after checking its size from the header alone.

    Raises `ImageTooLargeError` over the cap, `PIL.UnidentifiedImageError` for non-images, `OSError` for damaged files.
    """
    opened = open_image(source, max_pixels)
    try:
        opened.load()
    except OSError as error:
        opened.close()
        raise OSError(f"{_name(source)} could not be decoded: {error}") from error
    return opened


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any Pillow mode (1, L, P, LA, RGBA, CMYK, I;16, I, F, ...) to 8-bit RGB.

    Transparent areas become white (the paper of a patent sheet). 16-bit greyscale (and 32-bit integers above 255) is
    scaled from 0-65535 to 0-255, floats from 0-1 to 0-255; other values are clipped to 0-255.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or pixels.max() > 255:  # 16-bit range: 0..65535 -> 0..255
            pixels = pixels / 257.0
        elif image.mode == "F" and pixels.max() <= 1.0:  # floats in 0..1
            pixels = pixels * 255.0
        return Image.fromarray(pixels.clip(0, 255).round().astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def expand_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Pads `image` (W, H) to (S, S), S = max(W, H), centred on a background of colour `fill`."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), fill)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square
