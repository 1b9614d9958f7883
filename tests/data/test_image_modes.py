"""Every mode and bit depth PIL opens becomes the RGB a person sees, or is refused with one line.

Built from a real LC25000 tile: each file holds the same picture in another mode, and the pixels lungfast
decodes (`TileImage`, what the store, predict and the app read) are compared with that picture, worked out
independently of `to_rgb`. The bug this guards: 16-bit grayscale decoded by PIL's convert("RGB") is an
all-white tile, which a model calls benign with confidence.
"""

import numpy as np
import pytest
from PIL import Image

from lungfast.data import images
from lungfast.data.tile_image import TileImage


@pytest.fixture(scope="module")
def tile(lc25000):
    with Image.open(lc25000 / "lung_image_sets" / "lung_scc" / "lungscc1.jpeg") as im:
        return im.convert("RGB").resize((96, 96))


def _gray(tile):
    g = np.asarray(tile.convert("L"))
    return np.repeat(g[..., None], 3, axis=2)


def _decoded(path):
    return np.asarray(TileImage.create(path)).astype(int)


def _half_transparent(tile, mode):
    im = tile.convert(mode)
    alpha = Image.new("L", tile.size, 255)
    alpha.paste(0, (0, 0, 48, 96))  # left half fully transparent
    im.putalpha(alpha)
    return im


# name -> (write the file, the picture a viewer shows, largest allowed difference per channel)
CASES = {
    "rgb_png": (lambda t, p: t.save(p), lambda t: np.asarray(t), 0),
    "gray8_png": (lambda t, p: t.convert("L").save(p), _gray, 0),
    "gray16_png": (lambda t, p: Image.fromarray(np.asarray(t.convert("L")).astype(np.uint16) * 257).save(p), _gray, 0),
    "gray16_tif": (lambda t, p: Image.fromarray(np.asarray(t.convert("L")).astype(np.uint16) * 257).save(p), _gray, 0),
    "gray32_tif": (lambda t, p: Image.fromarray(np.asarray(t.convert("L")).astype(np.int32) * 257).save(p), _gray, 0),
    "bilevel_png": (
        lambda t, p: t.convert("1").save(p),
        lambda t: np.repeat(np.asarray(t.convert("1"), dtype=np.uint8)[..., None] * 255, 3, axis=2),
        0,
    ),
    "palette_png": (lambda t, p: t.quantize(64).save(p), lambda t: np.asarray(t.quantize(64).convert("RGB")), 0),
    "cmyk_tif": (lambda t, p: t.convert("CMYK").save(p), lambda t: np.asarray(t), 1),
    "cmyk_jpeg": (lambda t, p: t.convert("CMYK").save(p, quality=100), lambda t: np.asarray(t), 24),
    "rgba_opaque_png": (lambda t, p: t.convert("RGBA").save(p), lambda t: np.asarray(t), 0),
    "rgba_half_png": (
        lambda t, p: _half_transparent(t, "RGBA").save(p),
        lambda t: np.concatenate([np.full((96, 48, 3), 255, np.uint8), np.asarray(t)[:, 48:]], 1),
        0,
    ),
    "la_half_png": (
        lambda t, p: _half_transparent(t, "L").save(p),
        lambda t: np.concatenate([np.full((96, 48, 3), 255, np.uint8), _gray(t)[:, 48:]], 1),
        0,
    ),
}
SUFFIX = {"png": ".png", "tif": ".tif", "jpeg": ".jpeg"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mode_decodes_to_what_a_viewer_shows(case, tile, tmp_path):
    write, expected, tolerance = CASES[case]
    path = tmp_path / f"{case}{SUFFIX[case.rsplit('_', 1)[1]]}"
    write(tile, path)
    got, want = _decoded(path), np.asarray(expected(tile)).astype(int)
    assert got.shape == want.shape == (96, 96, 3)
    assert np.abs(got - want).max() <= tolerance, (Image.open(path).mode, np.abs(got - want).max())
    assert images.unreadable_reason(path) is None
    assert got.std() > 10  # a picture, never a blank tile


def test_sixteen_bit_grey_is_not_white(tile, tmp_path):
    """The finding itself: the same tile as 16-bit grey decodes to the 8-bit grey picture, not to 255s."""
    path = tmp_path / "scan16.png"
    Image.fromarray(np.asarray(tile.convert("L")).astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode.startswith("I")
    assert np.asarray(Image.open(path).convert("RGB")).min() == 255  # what PIL's own convert gives
    assert _decoded(path).mean() == pytest.approx(_gray(tile).mean(), abs=0.01)


def test_exif_orientation_is_applied(tile, tmp_path):
    """A camera stores the tile turned, with a tag saying how to turn it back; a viewer shows it upright."""
    path = tmp_path / "turned.jpeg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    tile.rotate(90, expand=True).save(path, exif=exif, quality=98)
    got, want = _decoded(path), np.asarray(tile).astype(int)
    assert np.abs(got - want).mean() < 3


@pytest.mark.parametrize("mode", ["F", "LAB"])
def test_modes_without_a_defined_rgb_are_refused_in_one_line(mode, tile, tmp_path):
    path = tmp_path / f"odd_{mode}.tif"
    im = Image.fromarray(np.asarray(tile.convert("L"), dtype=np.float32) / 255) if mode == "F" else tile.convert("LAB")
    im.save(path)
    reason = images.unreadable_reason(path)
    assert reason and "\n" not in reason and f"PIL mode {mode}" in reason and "save it as 8-bit RGB" in reason
    with pytest.raises(images.UnsupportedImage, match="save it as 8-bit RGB"):
        TileImage.create(path)


def test_long_decoder_messages_are_cut_at_a_word(tmp_path):
    assert images._shorten("word " * 100, 30).endswith("word …")
    assert len(images._shorten("word " * 100, 30)) <= 32


@pytest.mark.parametrize("pixels", [40 * 40, 100 * 100])  # over the limit (PIL warns), over twice it (PIL raises)
def test_an_oversized_image_gets_a_whole_sentence(pixels, tmp_path, monkeypatch):
    side = int(pixels**0.5)
    Image.new("RGB", (side, side), (200, 120, 180)).save(tmp_path / "slide.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    reason = images.unreadable_reason(tmp_path / "slide.png")
    assert reason.startswith("over PIL's decompression-bomb limit of 1,000 pixels")
    assert reason.endswith("(lungfast reads tiles, not slides)")
