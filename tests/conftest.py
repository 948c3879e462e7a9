"""Strict numerics for the whole test suite, a shared compilation cache, and shared fixtures."""

import atexit
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

# Many tests train or animate the same tiny models in fresh jits (and fresh subprocesses):
# one persistent compilation cache for this session, inherited by the subprocesses, skips
# the XLA compile of a program seen before (about a quarter of a training test's time). It
# starts empty, so every run still compiles everything once. Commands use it as they would a
# user's own (jwarp.cache), and diffrax's programs are cacheable as in every command.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jwarp-tests-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.05")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 * 1024**3))  # locked writes
os.environ.setdefault("EQX_ON_ERROR", "nan")  # read by equinox when it is imported
# The suite is compile-bound (tiny shapes, few steps): XLA:CPU's LLVM optimisations take ~40 %
# of its compile time and save nothing the tests can see (the same operations, unfused).
# Subprocesses inherit it (and the cache keys include it). JWARP_TEST_XLA_OPT=1 keeps them.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if os.environ.get("JWARP_TEST_XLA_OPT", "") in ("", "0"):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402  (after the cache settings, which jax reads when imported)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

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


def _child_env() -> dict[str, str]:
    """The environment of a child Python: this checkout importable, JAX on the CPU (and this
    session's compilation cache, inherited)."""
    root = Path(__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu"}


def _python_child(script: str, *args, cwd) -> subprocess.Popen:
    """``python -c script args`` in ``cwd`` (``_child_env``), with text pipes."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=_child_env(),
    )


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """The environment for a child process running jwarp (``_child_env``)."""
    return _child_env()


@pytest.fixture(scope="session")
def python_child():
    """``python_child(script, *args, cwd=...) -> Popen``: a child Python running ``script``."""
    return _python_child


def slow_write_script(write: str, side: int) -> str:
    """A child script that writes 100 ``side``-pixel frames with ``write`` (a call on
    ``media`` and ``Slow()``, the output path in ``sys.argv[1]``), each made in 0.05 s, and
    prints "writing" once the write is under way: for signals sent during a write."""
    return f"""
import sys, time
from collections.abc import Sequence
import numpy as np
from jwarp import media

class Slow(Sequence):
    def __len__(self):
        return 100
    def __getitem__(self, k):
        if k == 2:
            print("writing", flush=True)
        time.sleep(0.05)
        return np.full(({side}, {side}, 3), k / 100, np.float32)

{write}
"""


def _flip_checkpoint_bytes(step_dir: Path, n: int = 64) -> int:
    """Flips ``n`` bytes in the middle of every array data file of a checkpoint folder (the
    ocdbt chunks under ``state/ocdbt.process_0/d/``); returns how many files it changed."""
    files = [f for f in (step_dir / "state").rglob("*") if f.is_file() and f.parent.name == "d"]
    for f in files:
        data = bytearray(f.read_bytes())
        mid = len(data) // 2
        for i in range(max(0, mid - n // 2), min(len(data), mid + n // 2)):
            data[i] ^= 0xFF
        f.write_bytes(bytes(data))
    return len(files)


@pytest.fixture(scope="session")
def flip_checkpoint_bytes():
    """``flip_checkpoint_bytes(step_dir) -> files changed``: damage a checkpoint's arrays."""
    return _flip_checkpoint_bytes


# The real data sets (../shared/data beside the checkout, as in CI; JWARP_SHARED_DATA names
# another place). Tests that need them skip, saying why, where they are absent: a user's own
# clone has no ../shared.
SHARED_DATA = Path(
    os.environ.get("JWARP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _real(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} not found (set JWARP_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def real_smiles() -> Path:
    """The SMILEsmileD checkout of the real faces."""
    return _real("SMILEsmileD")


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The folder of the real MNIST ``t10k`` IDX files."""
    return _real("mnist")


def make_mini_smiles(real: Path, root: Path, n_neutral: int, n_smiling: int) -> Path:
    """A SMILEsmileD checkout at ``root`` with the first real files of each folder (linked)."""
    from jwarp.data import SMILES_NEUTRAL, SMILES_SMILING

    for parts, n in ((SMILES_NEUTRAL, n_neutral), (SMILES_SMILING, n_smiling)):
        folder = root.joinpath(*parts)
        folder.mkdir(parents=True)
        for f in sorted(real.joinpath(*parts).glob("*.jpg"))[:n]:
            (folder / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="session")
def mini_smiles(real_smiles, tmp_path_factory) -> Path:
    """A small SMILEsmileD checkout (400 neutral, 400 smiling real faces) for fast tests."""
    return make_mini_smiles(real_smiles, tmp_path_factory.mktemp("smiles") / "SMILEsmileD",
                            400, 400)
