"""Damaged image files that Pillow's plugins reject with exceptions of their own, for the dataset builder's tests.

`damaged_images()` maps the exception a full decode raises to the bytes: not only `OSError`, which the usual
`except` clauses catch, but `SyntaxError` (a PNG chunk header with flipped bits), `IndexError` (a truncated QOI)
and `RuntimeError` (an AVIF whose primary item does not exist).
"""

from __future__ import annotations

import io
import random

from PIL import Image

__all__ = ["damaged_images", "encoded"]


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def damaged_images() -> dict[str, bytes]:
    grey = Image.linear_gradient("L").resize((64, 64))
    noise = Image.frombytes("L", (300, 300), random.Random(0).randbytes(300 * 300))  # incompressible
    png = bytearray(encoded(noise, "PNG"))  # two IDAT chunks: Pillow writes them in blocks of 64 KiB
    second = png.index(b"IDAT", png.index(b"IDAT") + 4)
    png[second : second + 4] = bytes(byte ^ 0xFF for byte in png[second : second + 4])
    qoi = encoded(grey.convert("RGB"), "QOI")
    avif = bytearray(encoded(grey.convert("RGB"), "AVIF"))
    primary = avif.index(b"pitm") + 8  # after the box type and its version/flags: the primary item's id
    avif[primary : primary + 2] = b"\xff\xff"  # names an item that does not exist
    return {"SyntaxError": bytes(png), "IndexError": qoi[: len(qoi) // 2], "RuntimeError": bytes(avif)}
