"""Strict numerics for the whole test suite, and shared fixtures."""

import io
import struct
import zlib

import jax
import numpy as np
import pytest
from PIL import Image

# Implicit rank promotion hides shape bugs ([H, W, 2] + [B, H, W, 2] silently broadcasting).
jax.config.update("jax_numpy_rank_promotion", "raise")


def _png_header_only(path, width, height):
    """A PNG whose valid header claims ``width x height`` pixels (and almost no data)."""

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat))


def _write_bad_images(folder):
    """Writes every kind of unreadable image file into ``folder``; returns their names.

    ``empty.png`` (0 bytes), ``truncated.png`` (half a PNG), ``text.png`` (not an image),
    ``bomb.png`` (a header claiming 10^10 pixels: Pillow's DecompressionBombError) and
    ``big.png`` (10^8 pixels: only Pillow's DecompressionBombWarning).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 99, np.uint8)).save(buffer, format="PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "text.png").write_text("not an image")
    _png_header_only(folder / "bomb.png", 100_000, 100_000)
    _png_header_only(folder / "big.png", 10_000, 10_000)
    return ["big.png", "bomb.png", "empty.png", "text.png", "truncated.png"]


@pytest.fixture(scope="session")
def write_bad_images():
    """``write_bad_images(folder) -> names``: unreadable image files of every kind."""
    return _write_bad_images
