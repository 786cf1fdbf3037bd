"""Behaviour of `processing/images.py`: any Pillow mode -> RGB, every input kind, the decompression-bomb cap,
truncated files, and LLaVA's pad-to-square.

Everything runs on real pixels: the bundled USPTO figures and small images built here, encoded by Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from processing.constants import DEFAULT_MAX_IMAGE_PIXELS
from processing.images import ImageTooLargeError, expand_to_square, load_image, open_image, to_rgb

FIGURE_8 = "US20250204297A1__8"  # 1-bit PNG, 1125 x 2618 (portrait)

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def _rgb(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def _png_bytes(image: Image.Image, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_kwargs)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header that claims `width` x `height` 8-bit RGB pixels, followed by a tiny IDAT that holds
    almost none of them: decoding it would need width*height*3 bytes and then fail as truncated."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff" * 3 * 8)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def figure8_path(figures):
    return figures[FIGURE_8]["path"]


# ---------------------------------------------------------------------------------------------- to_rgb: every mode


def test_rgb_is_returned_unchanged():
    image = Image.new("RGB", (3, 2), (10, 20, 30))
    assert to_rgb(image) is image


def test_one_bit_black_and_white():
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    assert _rgb(to_rgb(image)).tolist() == [[list(BLACK), list(WHITE)]]


def test_greyscale_l_repeats_the_grey_level():
    image = Image.fromarray(np.array([[0, 77, 255]], dtype=np.uint8))
    assert image.mode == "L"
    assert _rgb(to_rgb(image)).tolist() == [[[0, 0, 0], [77, 77, 77], [255, 255, 255]]]


def test_palette_without_transparency_uses_the_palette_colours():
    image = Image.new("P", (2, 1), 0)
    image.putpalette([200, 10, 20, 5, 150, 60] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    assert "transparency" not in image.info
    assert _rgb(to_rgb(image)).tolist() == [[[200, 10, 20], [5, 150, 60]]]


def test_palette_with_transparent_index_becomes_white():
    image = Image.new("P", (2, 1), 0)
    image.putpalette([200, 10, 20, 5, 150, 60] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 1  # palette index 1 is fully transparent
    assert _rgb(to_rgb(image)).tolist() == [[[200, 10, 20], list(WHITE)]]


def test_palette_png_with_trns_chunk_read_from_bytes_becomes_white():
    """The same through an encoded file: Pillow reads the tRNS chunk into `info["transparency"]`."""
    image = Image.new("P", (2, 1), 0)
    image.putpalette([0, 0, 0, 90, 90, 90] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    encoded = _png_bytes(image, transparency=0)  # index 0 (black) transparent
    assert Image.open(io.BytesIO(encoded)).mode == "P"
    assert _rgb(load_image(encoded)).tolist() == [[list(WHITE), [90, 90, 90]]]


def test_rgba_transparent_becomes_white_and_partial_alpha_is_composited_on_white():
    pixels = np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    image = Image.fromarray(pixels)
    assert image.mode == "RGBA"
    out = _rgb(to_rgb(image))
    assert out[0, 0].tolist() == list(WHITE)  # fully transparent red -> paper white
    assert out[0, 1].tolist() == [255, 0, 0]  # opaque red stays red
    # Black at alpha 128 over white: 255 * (1 - 128/255) = 127.
    assert out[0, 2].tolist() == [127, 127, 127]


def test_la_transparent_becomes_white():
    image = Image.new("LA", (3, 1))
    image.putpixel((0, 0), (0, 0))  # transparent black
    image.putpixel((1, 0), (0, 255))  # opaque black
    image.putpixel((2, 0), (200, 255))  # opaque grey
    assert _rgb(to_rgb(image)).tolist() == [[list(WHITE), list(BLACK), [200, 200, 200]]]


def test_cmyk_is_converted_to_rgb():
    image = Image.new("CMYK", (3, 1))
    image.putpixel((0, 0), (0, 0, 0, 0))  # no ink: white
    image.putpixel((1, 0), (0, 0, 0, 255))  # full black
    image.putpixel((2, 0), (255, 0, 0, 0))  # full cyan
    assert _rgb(to_rgb(image)).tolist() == [[list(WHITE), list(BLACK), [0, 255, 255]]]


@pytest.mark.parametrize("dtype", ["<u2", ">u2"], ids=["I;16", "I;16B"])
def test_sixteen_bit_greyscale_is_rescaled_to_eight_bit(dtype):
    pixels = np.array([[0, 32768, 65535]], dtype=dtype)
    image = Image.fromarray(pixels)
    assert image.mode.startswith("I;16")
    # 0 -> 0, 65535 -> 255, the middle of the range -> 128 (not clipped to 255 as a plain convert("L") would)
    assert _rgb(to_rgb(image))[..., 0].tolist() == [[0, 128, 255]]
    assert np.array_equal(_rgb(to_rgb(image))[..., 0], _rgb(to_rgb(image))[..., 2])


def test_thirty_two_bit_integer_in_sixteen_bit_range_is_scaled_and_small_values_kept():
    wide = Image.fromarray(np.array([[0, 257 * 100, 65535, 70000]], dtype=np.int32))
    assert wide.mode == "I"
    assert _rgb(to_rgb(wide))[..., 0].tolist() == [[0, 100, 255, 255]]  # 0..65535 -> 0..255, above clipped
    narrow = Image.fromarray(np.array([[-5, 0, 100, 255]], dtype=np.int32))
    assert _rgb(to_rgb(narrow))[..., 0].tolist() == [[0, 0, 100, 255]]  # already 8-bit values: kept, negatives clipped


def test_uniform_sixteen_bit_white_page_stays_white():
    image = Image.fromarray(np.full((2, 3), 65535, dtype="<u2"))
    assert _rgb(to_rgb(image)).tolist() == [[list(WHITE)] * 3] * 2


def test_float_image_in_unit_range_is_scaled_to_eight_bit():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    assert _rgb(to_rgb(image)).tolist() == [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]


def test_real_one_bit_figure_becomes_rgb_with_the_same_pixels(figure8_path):
    with Image.open(figure8_path) as original:
        assert original.mode == "1"
        grey = np.asarray(original.convert("L"))
        converted = _rgb(to_rgb(original))
    assert converted.shape == (2618, 1125, 3)
    assert set(np.unique(converted).tolist()) == {0, 255}
    assert np.array_equal(converted[..., 0], grey) and np.array_equal(converted[..., 1], grey)


# ---------------------------------------------------------------------------------------------- load_image: inputs


def test_path_str_pathlike_bytes_and_pil_inputs_give_the_same_rgb_image(figure8_path):
    from_path = load_image(figure8_path)
    assert from_path.mode == "RGB" and from_path.size == (1125, 2618)
    expected = np.asarray(from_path)
    assert np.array_equal(np.asarray(load_image(str(figure8_path))), expected)
    assert np.array_equal(np.asarray(load_image(figure8_path.read_bytes())), expected)
    with Image.open(figure8_path) as lazy:  # not decoded yet
        assert np.array_equal(np.asarray(load_image(lazy)), expected)


def test_array_inputs_grey_rgb_and_rgba():
    grey = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    assert _rgb(load_image(grey)).tolist() == [[[0] * 3, [100] * 3], [[200] * 3, [255] * 3]]

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # (H, W, C)
    loaded = load_image(rgb)
    assert loaded.size == (3, 2)  # PIL size is (W, H)
    assert np.array_equal(_rgb(loaded), rgb)

    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 1] = [10, 20, 30, 255]
    assert _rgb(load_image(rgba)).tolist() == [[list(WHITE), [10, 20, 30]]]


def test_unsupported_input_type_is_a_type_error():
    with pytest.raises(TypeError, match="Unsupported image type int"):
        load_image(42)


def test_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")


# ---------------------------------------------------------------------------------------------- size cap


def test_header_claiming_a_huge_size_is_rejected_before_decoding():
    """The header says 100000 x 100000 (10^10 pixels, 30 GB of RGB); the data holds 8 pixels. Decoding first would
    allocate or fail as truncated: the cap must answer from the header alone."""
    bomb = _png_claiming(100_000, 100_000)
    assert struct.unpack(">II", bomb[16:24]) == (100_000, 100_000)  # sanity: the IHDR claims that size
    with pytest.raises(ImageTooLargeError) as caught:
        load_image(bomb)
    message = str(caught.value)
    assert "100000x100000" in message
    assert "10,000,000,000" in message
    assert "64,000,000" in message
    assert "The image bytes" in message


def test_default_cap_is_64_megapixels(tmp_path):
    assert DEFAULT_MAX_IMAGE_PIXELS == 64_000_000
    over = tmp_path / "over.png"
    over.write_bytes(_png_claiming(8000, 8001))  # 64,008,000 pixels
    expected = r"8000x8001: padded to a square it is 8001x8001 = 64,016,001 pixels, over the cap of 64,000,000"
    with pytest.raises(ImageTooLargeError, match=expected) as e:
        load_image(over)
    assert str(over) in str(e.value)  # a path names the file
    # 8000 x 8000 is exactly at the cap: accepted by the cap, so decoding starts and fails on the missing data.
    at_cap = tmp_path / "at_cap.png"
    at_cap.write_bytes(_png_claiming(8000, 8000))
    with pytest.raises(OSError) as e:
        load_image(at_cap)
    assert not isinstance(e.value, ImageTooLargeError)


def test_real_figure_over_a_small_cap_names_size_and_cap(figure8_path):
    with pytest.raises(ImageTooLargeError) as caught:
        load_image(figure8_path, max_pixels=1_000_000)
    message = str(caught.value)
    assert "1125x2618: padded to a square it is 2618x2618 = 6,853,924 pixels" in message
    assert "cap of 1,000,000" in message
    assert isinstance(caught.value, ValueError)  # callers catching ValueError still see it


def test_cap_is_checked_before_decoding_a_real_figure(figure8_path):
    """Half of the real PNG: the header (size) is intact, the pixel data is cut. Over the cap it must be the size
    error (nothing decoded); under the cap decoding runs and reports the truncation."""
    half = figure8_path.read_bytes()[: figure8_path.stat().st_size // 2]
    with pytest.raises(ImageTooLargeError, match="1125x2618"):
        load_image(half, max_pixels=2618 * 2618 - 1)
    with Image.open(io.BytesIO(half)) as lazy:  # a lazily opened PIL image is checked before it is loaded too
        with pytest.raises(ImageTooLargeError, match="1125x2618"):
            load_image(lazy, max_pixels=1000)


def test_the_cap_covers_the_square_an_extreme_aspect_ratio_is_padded_to():
    """A real 1 x 30000 PNG (about 140 bytes, 30,000 pixels) pads to a 30000 x 30000 square, 2.7 GB of RGB: refused
    from the header, as bytes, a file, a PIL image and an array; a header-only copy proves nothing is decoded."""
    strip = _png_bytes(Image.new("1", (1, 30_000), 1))
    assert len(strip) < 200
    expected = r"1x30000: padded to a square it is 30000x30000 = 900,000,000 pixels, over the cap of 64,000,000"
    for source in (strip, Image.open(io.BytesIO(strip)), np.zeros((30_000, 1), dtype=np.uint8)):
        with pytest.raises(ImageTooLargeError, match=expected):
            load_image(source)
    with pytest.raises(ImageTooLargeError, match=expected):  # the pixel data is missing: only the header was read
        load_image(_png_claiming(1, 30_000))
    with pytest.raises(ImageTooLargeError, match="30000x1: padded to a square it is 30000x30000"):
        open_image(_png_claiming(30_000, 1))
    assert load_image(strip, max_pixels=None).size == (1, 30_000)  # a trusted caller may lift the cap


def test_cap_applies_to_pil_and_array_inputs_and_none_disables_it():
    image = Image.new("L", (10, 10), 255)
    with pytest.raises(ImageTooLargeError, match=r"10x10 = 100 pixels, over the cap of 99"):
        load_image(image, max_pixels=99)
    with pytest.raises(ImageTooLargeError, match="10x10"):
        load_image(np.full((10, 10), 255, dtype=np.uint8), max_pixels=99)
    assert load_image(image, max_pixels=100).size == (10, 10)  # exactly at the cap is fine
    assert load_image(image, max_pixels=None).size == (10, 10)


def test_pillow_global_cap_is_restored_after_success_and_failure(figure8_path):
    before = Image.MAX_IMAGE_PIXELS
    load_image(figure8_path)
    assert Image.MAX_IMAGE_PIXELS == before
    with pytest.raises(ImageTooLargeError):
        load_image(_png_claiming(100_000, 100_000))
    assert Image.MAX_IMAGE_PIXELS == before


def test_image_over_pillows_own_bomb_limit_but_under_our_cap_is_not_refused_by_pillow(monkeypatch):
    """Our cap replaces Pillow's: with Pillow's limit set tiny, a small image still opens when our cap allows it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    encoded = _png_bytes(Image.new("L", (20, 20), 0))  # 400 px: 40x Pillow's (patched) limit -> it would raise
    assert load_image(encoded, max_pixels=400).size == (20, 20)
    assert Image.MAX_IMAGE_PIXELS == 10


# ---------------------------------------------------------------------------------------------- broken files


def test_truncated_png_bytes_raise_a_clear_error(figure8_path):
    data = figure8_path.read_bytes()
    with pytest.raises(OSError, match="truncated"):
        load_image(data[: len(data) // 2])
    with pytest.raises(OSError, match="truncated"):
        load_image(data[:100])  # header and the start of the data only


def test_bytes_that_are_not_an_image_raise_unidentified_image_error():
    from PIL import UnidentifiedImageError

    with pytest.raises(UnidentifiedImageError):
        load_image(b"definitely not an image")


# ---------------------------------------------------------------------------------------------- expand_to_square


def test_expand_to_square_landscape_centres_vertically_with_the_fill():
    image = Image.new("RGB", (4, 2), (255, 0, 0))
    square = expand_to_square(image, (1, 2, 3))
    assert square.size == (4, 4) and square.mode == "RGB"
    pixels = np.asarray(square)
    assert (pixels[[0, 3]] == [1, 2, 3]).all()
    assert (pixels[1:3] == [255, 0, 0]).all()


def test_expand_to_square_portrait_centres_horizontally_with_the_fill():
    image = Image.new("RGB", (2, 6), (0, 0, 255))
    square = expand_to_square(image, (127, 127, 127))
    assert square.size == (6, 6)
    pixels = np.asarray(square)
    assert (pixels[:, [0, 1, 4, 5]] == 127).all()
    assert (pixels[:, 2:4] == [0, 0, 255]).all()


def test_expand_to_square_odd_difference_puts_the_extra_line_after_the_image():
    image = Image.new("RGB", (5, 2), WHITE)
    pixels = np.asarray(expand_to_square(image, BLACK))
    assert pixels.shape == (5, 5, 3)
    rows_white = [bool((pixels[row] == 255).all()) for row in range(5)]
    assert rows_white == [False, True, True, False, False]  # (5 - 2) // 2 = 1 line above, 2 below


def test_expand_to_square_keeps_square_images_as_they_are():
    image = Image.new("RGB", (3, 3), (9, 9, 9))
    assert expand_to_square(image, BLACK) is image


def test_expand_to_square_real_figure(figure8_path):
    image = load_image(figure8_path)
    square = expand_to_square(image, (127, 127, 127))
    assert square.size == (2618, 2618)
    pixels = np.asarray(square)
    left = (2618 - 1125) // 2  # 746
    assert (pixels[:, :left] == 127).all() and (pixels[:, left + 1125 :] == 127).all()
    assert np.array_equal(pixels[:, left : left + 1125], np.asarray(image))
