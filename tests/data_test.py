"""Tests for jwarp.data: every source's contract, the faces' smile geometry, batching."""

import gzip
import os
import struct
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from jwarp import data


def _assert_images(x, shape):
    assert x.shape == shape
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert x.min() >= 0.0 and x.max() <= 1.0


# ------------------------------------------------------------------------------------------
# Faces.
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smile_frames():
    """Eight faces at s = 0, 0.25, 0.5, 0.75, 1: [5, 8, 64, 64, 4]."""
    return data.faces_at(8, [0.0, 0.25, 0.5, 0.75, 1.0], size=64, channels=4, seed=3)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("size", [16, 32, 64, 100])
def test_faces_shapes_dtype_range(size, channels):
    x0, x1 = data.faces(3, size=size, channels=channels, split="test", seed=1)
    _assert_images(x0, (3, size, size, channels))
    _assert_images(x1, (3, size, size, channels))


def test_faces_at_shape_and_matches_faces():
    frames = data.faces_at(2, [0.0, 0.3, 1.0], size=32, channels=3)
    _assert_images(frames, (3, 2, 32, 32, 3))
    x0, x1 = data.faces(2, size=32, channels=3)
    np.testing.assert_array_equal(frames[0], x0)
    np.testing.assert_array_equal(frames[2], x1)


def test_render_face_matches_batch_render():
    params = data.face_params(3, seed=5)
    batch = data.render_faces(params, 0.4, size=48)
    for i, p in enumerate(params):
        np.testing.assert_array_equal(data.render_face(p, 0.4, size=48), batch[i])


def test_faces_deterministic_and_prefix_stable():
    a0, a1 = data.faces(4, size=32, seed=7)
    b0, b1 = data.faces(6, size=32, seed=7)
    np.testing.assert_array_equal(a0, b0[:4])
    np.testing.assert_array_equal(a1, b1[:4])
    c0, _ = data.faces(4, size=32, seed=8)
    assert not np.array_equal(a0, c0)


def test_sample_face_params_deterministic():
    p = data.sample_face_params(np.random.default_rng(0))
    q = data.sample_face_params(np.random.default_rng(0))
    assert p == q
    assert data.render_face(p, 1.0, 32).shape == (32, 32, 4)


def test_train_test_disjoint():
    train = data.face_params(200, "train", seed=0)
    test = data.face_params(200, "test", seed=0)
    assert not set(train) & set(test)
    x_train, _ = data.faces(64, size=32, split="train")
    x_test, _ = data.faces(64, size=32, split="test")
    dist = np.abs(x_train[:, None] - x_test[None]).reshape(64, 64, -1).max(-1)
    assert dist.min() > 0.1


def test_channels_are_composites_of_rgba():
    params = data.face_params(2, seed=2)
    rgba = data.render_faces(params, 0.5, 40, channels=4)
    rgb = data.render_faces(params, 0.5, 40, channels=3)
    grey = data.render_faces(params, 0.5, 40, channels=1)
    np.testing.assert_allclose(rgb, rgba[..., :3] * rgba[..., 3:], atol=1e-6)
    np.testing.assert_allclose(grey[..., 0], rgb @ [0.299, 0.587, 0.114], atol=1e-5)
    background = rgba[..., 3] == 0
    assert background.any()
    assert (rgba[background] == 0).all()


def test_anti_aliased_head_edge():
    alpha = data.render_face(data.face_params(1)[0], 0.0, 64)[..., 3]
    fractional = (alpha > 0.02) & (alpha < 0.98)
    assert fractional.sum() > 40  # most of the ~130 px head outline
    assert len(np.unique(np.round(alpha[fractional], 2))) > 15


def test_head_scales_with_size():
    """The head covers the same fraction of the frame at every size (no pixel-unit geometry)."""
    p = data.face_params(1, seed=4)[0]
    fractions = [data.render_face(p, 0.0, s)[..., 3].mean() for s in (16, 32, 64, 100)]
    np.testing.assert_allclose(fractions, fractions[-1], rtol=0.06)


def test_smile_keeps_mask_pose_and_upper_face(smile_frames):
    x0, x1 = smile_frames[0], smile_frames[-1]
    np.testing.assert_array_equal(x0[..., 3], x1[..., 3])
    for a, b in zip(x0, x1, strict=True):
        rows = np.flatnonzero(a[..., 3].max(1) > 0)
        top, height = rows[0], rows[-1] - rows[0]
        upper = slice(0, top + int(0.35 * height))  # hair, forehead, brows
        np.testing.assert_array_equal(a[upper], b[upper])


def _opaque_colours(x, interior_only):
    """Colours [K, 3] of opaque pixels; interior: the 3x3 neighbourhood is one colour."""
    rgb, opaque = x[..., :3], x[..., 3] == 1.0
    if interior_only:
        padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = rgb.shape[:2]
        for dy in range(3):
            for dx in range(3):
                opaque &= np.all(padded[dy : dy + h, dx : dx + w] == rgb, axis=-1)
    return rgb[opaque]


def test_smile_adds_no_new_colours():
    """Solid colours at s = 1 (and 0.5) all exist at s = 0: the smile is geometry only."""
    params = data.face_params(6, seed=3)
    frames = data.faces_at(6, [0.0, 0.5, 1.0], size=128, seed=3)
    for i, p in enumerate(params):
        palette = np.unique(_opaque_colours(frames[0, i], False), axis=0)
        for k in (1, 2):
            solid = np.unique(_opaque_colours(frames[k, i], True), axis=0)
            assert np.abs(solid - np.float32(p.lip)).max(-1).min() < 1e-5  # the smile is there
            nearest = np.abs(solid[:, None] - palette[None]).max(-1).min(1)
            assert nearest.max() < 1e-5, (i, k, solid[nearest.argmax()])


def _lip_pixels(frames, params):
    lip = np.array([p.lip for p in params], np.float32)[:, None, None]
    return (np.abs(frames[..., :3] - lip).max(-1) < 0.02).sum(axis=(-1, -2))


def test_smile_changes_mouth_geometrically(smile_frames):
    params = data.face_params(8, seed=3)
    x0, x1 = smile_frames[0], smile_frames[-1]
    changed = np.abs(x1 - x0).max(-1) > 0.01
    assert (changed.sum(axis=(1, 2)) > 80).all()  # mouth, cheeks and eyes move
    lips = _lip_pixels(smile_frames, params)  # [5, 8]
    assert (lips[-1] > 2 * lips[0]).all()  # the lip line opens into a wide crescent
    assert (lips[0] < lips[2]).all() and (lips[2] < lips[4]).all()  # growing with s
    # Changes sit below the eye line: the changed pixels' centroid is in the lower face.
    rows = np.arange(64)[None, :, None]
    changed_rows = (changed * rows).sum(axis=(1, 2)) / changed.sum(axis=(1, 2))
    mask_rows = (x0[..., 3] * rows).sum(axis=(1, 2)) / x0[..., 3].sum(axis=(1, 2))
    assert (changed_rows > mask_rows).all()


def test_intermediate_frames_lie_between(smile_frames):
    def dist(a, b):
        return np.sqrt(((a - b) ** 2).sum(axis=(-1, -2, -3)))

    ends = dist(smile_frames[0], smile_frames[-1])
    from_start = np.stack([dist(f, smile_frames[0]) for f in smile_frames])
    to_end = np.stack([dist(f, smile_frames[-1]) for f in smile_frames])
    assert (from_start[2] < ends).all() and (to_end[2] < ends).all()
    assert (np.diff(from_start, axis=0) > 0).all()
    assert (np.diff(to_end, axis=0) < 0).all()
    # Continuity in s: a small step in s makes a small change.
    near = data.faces_at(8, [0.5, 0.52], size=64, seed=3)
    assert (dist(near[0], near[1]) < 0.2 * ends).all()


def test_faces_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.faces(1, split="val")
    with pytest.raises(ValueError, match="channels"):
        data.faces(1, channels=2)


# ------------------------------------------------------------------------------------------
# Digits and MNIST.
# ------------------------------------------------------------------------------------------


def test_digits_shapes_split_and_classes():
    threes, fours = data.digits("train", size=32)
    t_threes, t_fours = data.digits("test", size=32)
    _assert_images(threes, threes.shape)
    assert threes.shape[1:] == fours.shape[1:] == (32, 32, 1)
    assert len(threes) + len(t_threes) == 183 and len(fours) + len(t_fours) == 181
    assert 0.75 < len(threes) / 183 < 0.85
    train_flat = threes.reshape(len(threes), -1)
    test_flat = t_threes.reshape(len(t_threes), -1)
    assert np.abs(train_flat[:, None] - test_flat[None]).max(-1).min() > 0
    assert np.abs(threes.mean(0) - fours.mean(0)).mean() > 0.05
    np.testing.assert_array_equal(data.digits("train", size=32)[0], threes)
    small, _ = data.digits("test", size=16, seed=1)
    _assert_images(small, (len(t_threes), 16, 16, 1))


def _write_idx(path, array, magic=None):
    array = np.asarray(array, np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def test_mnist_idx_round_trip_and_split(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 5  # 12 of each of 0..4
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)

    # The t10k files alone: test = the indices the hash picks, train = the rest.
    in_test = np.array([data.split_of(f"t10k-{i}", data.MNIST_TEST_PERCENT) == "test"
                        for i in range(n)])
    assert 0 < in_test.sum() < n
    x, y = data.mnist_labelled(tmp_path, "test", size=32)
    want = [i for c in range(5) for i in np.flatnonzero(in_test & (labels == c))]
    np.testing.assert_array_equal(y, labels[want])
    np.testing.assert_allclose(x[:, 2:30, 2:30, 0], images[want] / 255, atol=1e-6)
    assert (x[:, :2] == 0).all() and (x[:, :, 30:] == 0).all()
    threes, fours = data.load_mnist(tmp_path, "train", size=20)
    _assert_images(threes, (np.sum(~in_test & (labels == 3)), 20, 20, 1))
    _assert_images(fours, (np.sum(~in_test & (labels == 4)), 20, 20, 1))
    ones, zeros = data.load_mnist(tmp_path, "test", source_class=1, target_class=0)
    assert len(ones) == np.sum(in_test & (labels == 1)) and len(zeros) == np.sum(
        in_test & (labels == 0))

    # With the training files too: they join the training split; the test split is unchanged.
    extra = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", extra)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(7, 3, np.uint8))
    x_test_again, _ = data.mnist_labelled(tmp_path, "test", size=32)
    np.testing.assert_array_equal(x_test_again, x)
    more_threes, _ = data.load_mnist(tmp_path, "train", size=20)
    assert len(more_threes) == len(threes) + 7
    with pytest.raises(data.DataError, match="no MNIST digit 7 in the test split"):
        data.load_mnist(tmp_path, "test", source_class=7)


def test_real_mnist_t10k_alone_gives_both_splits(real_mnist):
    threes, fours = data.load_mnist(real_mnist, "test")
    t_threes, t_fours = data.load_mnist(real_mnist, "train")
    # 1,010 threes and 982 fours in t10k; a fifth of each in the test split.
    assert len(threes) + len(t_threes) == 1010 and len(fours) + len(t_fours) == 982
    assert 0.15 < len(threes) / 1010 < 0.25 and 0.15 < len(fours) / 982 < 0.25
    _assert_images(threes, (len(threes), 32, 32, 1))
    flat = {im.tobytes() for im in t_threes}
    assert not any(im.tobytes() in flat for im in threes)


def _split_by_name(names):
    return {n for n in names if data.split_of(n, data.SMILES_TEST_PERCENT) == "test"}


def test_smiles_loader_reads_a_checkout_and_splits_by_file_name(mini_smiles, tmp_path):
    neutral, smiling = data.load_smiles(mini_smiles, "train")
    t_neutral, t_smiling = data.load_smiles(mini_smiles, "test")
    assert len(neutral) + len(t_neutral) == 400 and len(smiling) + len(t_smiling) == 400
    _assert_images(neutral, (len(neutral), 64, 64, 1))
    _assert_images(t_smiling, (len(t_smiling), 64, 64, 1))
    files, t_files = data.smiles_files(mini_smiles, "train"), data.smiles_files(mini_smiles, "test")
    for side in (0, 1):
        names = [f.name for f in files[side] + t_files[side]]
        assert {f.name for f in t_files[side]} == _split_by_name(names)
        assert 20 <= len(t_files[side]) <= 60  # about 10 %
    # The pixels are the JPEG's own grey levels.
    first = np.asarray(Image.open(files[0][0]), np.float32) / 255
    np.testing.assert_allclose(neutral[0, ..., 0], first, atol=1e-6)
    # A file's split does not depend on which other files are present (a smaller checkout).
    small = tmp_path / "small"
    for f in files[0][::3] + t_files[0][::3] + files[1][:5] + t_files[1][:5]:
        dest = small / f.relative_to(mini_smiles)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(f)
    s_test = data.smiles_files(small, "test")[0]
    assert {f.name for f in s_test} == {f.name for f in t_files[0][::3]}
    # Other sizes and channels; the SMILEs/ folder itself also works.
    grey32, _ = data.load_smiles(mini_smiles / "SMILEs", "test", size=32, channels=3)
    _assert_images(grey32, (len(t_neutral), 32, 32, 3))


def test_smiles_loader_errors_name_the_folder(tmp_path):
    with pytest.raises(data.DataError, match=r"nowhere: .*SMILEs/negatives/negatives7"):
        data.load_smiles(tmp_path / "nowhere")
    (tmp_path / "c" / "SMILEs" / "negatives" / "negatives7").mkdir(parents=True)
    with pytest.raises(data.DataError, match="no SMILEs/positives/positives7/.*git clone"):
        data.load_smiles(tmp_path / "c")


def test_mnist_idx_errors(tmp_path):
    with pytest.raises(data.DataError, match="folder not found"):
        data.load_mnist(tmp_path / "nowhere")
    labels = np.array([3, 4], np.uint8)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(data.DataError, match="missing MNIST IDX file t10k-images-idx3-ubyte"):
        data.load_mnist(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    _write_idx(bad, np.zeros((2, 28, 28)), magic=0x00000903)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*magic"):
        data.load_mnist(tmp_path)
    _write_idx(bad, np.zeros((2, 28)))  # a valid IDX file, but 2-D
    with pytest.raises(ValueError, match="expected 0x00000803"):
        data.load_mnist(tmp_path)
    bad.write_bytes(struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(100))
    with pytest.raises(ValueError, match="needs 1568 data bytes"):
        data.load_mnist(tmp_path)
    _write_idx(bad, np.zeros((3, 28, 28)))
    with pytest.raises(data.DataError, match="2 labels for 3 images"):
        data.load_mnist(tmp_path)
    # Training files that are there must be whole.
    _write_idx(bad, np.zeros((2, 28, 28)))
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    with pytest.raises(data.DataError, match="missing MNIST IDX file train-labels-idx1-ubyte"):
        data.load_mnist(tmp_path, "train")


# ------------------------------------------------------------------------------------------
# Image folders.
# ------------------------------------------------------------------------------------------

_COLOUR = (200, 100, 50)


def _write_mode_images(folder):
    """One 30x20 image per Pillow mode; the central 20x20 square holds the colour of interest."""
    folder.mkdir(parents=True)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, 5:25] = _COLOUR
    base = Image.fromarray(rgb)
    base.save(folder / "rgb.png")
    base.convert("L").save(folder / "l.png")
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "p.png")
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    rgba[:10, :, 3] = 0  # top half transparent
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(rgba).convert("LA").save(folder / "la.png")
    grey16 = np.zeros((20, 30), np.uint16)
    grey16[:, 5:25] = 40000
    Image.fromarray(grey16).save(folder / "i16.png")
    base.convert("CMYK").save(folder / "cmyk.jpg", quality=95)


def test_folder_modes_converted(tmp_path):
    _write_mode_images(tmp_path / "source")
    _write_mode_images(tmp_path / "target")
    with (
        Image.open(tmp_path / "source" / "i16.png") as i16,
        Image.open(tmp_path / "source" / "cmyk.jpg") as cmyk,
    ):
        assert i16.mode.startswith("I") and cmyk.mode == "CMYK"  # the modes under test
    names = ["cmyk", "i16", "l", "la", "p", "rgb", "rgba"]  # sorted file order
    colour = np.array(_COLOUR) / 255
    luma = colour @ [0.299, 0.587, 0.114]
    for channels in (1, 3, 4):
        source, target = data.load_folder(tmp_path, size=12, channels=channels)
        _assert_images(source, (7, 12, 12, channels))
        np.testing.assert_array_equal(source, target)
        got = dict(zip(names, source, strict=True))
        centre = (slice(2, 10), slice(2, 10))
        if channels == 4:
            np.testing.assert_allclose(
                got["rgb"][..., :3], np.broadcast_to(colour, (12, 12, 3)), atol=0.01
            )  # cropped to the coloured square
            np.testing.assert_allclose(got["rgb"][..., 3], 1.0)
            assert got["rgba"][:4, :, 3].max() < 0.05 and got["rgba"][-4:, :, 3].min() > 0.95
            grey16 = np.broadcast_to([40000 / 65535] * 3 + [1.0], (8, 8, 4))
            np.testing.assert_allclose(got["i16"][centre], grey16, atol=0.01)
        elif channels == 3:
            np.testing.assert_allclose(
                got["rgb"][centre], np.broadcast_to(colour, (8, 8, 3)), atol=0.01
            )
            assert got["rgba"][:4].max() < 0.05  # transparent -> black
            np.testing.assert_allclose(got["cmyk"][centre], got["rgb"][centre], atol=0.06)
            np.testing.assert_allclose(got["l"][..., 0], got["l"][..., 1])
        else:
            np.testing.assert_allclose(got["rgb"][centre], luma, atol=0.01)
            np.testing.assert_allclose(got["l"][centre], luma, atol=0.01)
            np.testing.assert_allclose(got["p"][centre], luma, atol=0.03)
            np.testing.assert_allclose(got["la"][-4:, 2:10], luma, atol=0.01)


def test_folder_paired(tmp_path):
    for side, names in (("source", ["b", "a", "c"]), ("target", ["a", "c", "b"])):
        (tmp_path / side).mkdir()
        for name in names:
            value = {"a": 10, "b": 20, "c": 30}[name] + (100 if side == "target" else 0)
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(tmp_path / side / f"{name}.png")
    source, target = data.load_folder(tmp_path, size=8, channels=1, paired=True)
    np.testing.assert_allclose(target - source, 100 / 255, atol=1e-6)

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "source" / "lonely.png")
    with pytest.raises(ValueError, match="lonely.png"):
        data.load_folder(tmp_path, size=8, channels=1, paired=True)
    assert len(data.load_folder(tmp_path, size=8, channels=1)[0]) == 4  # unpaired is fine


def test_folder_errors(tmp_path):
    with pytest.raises(data.DataError, match="nothere: folder not found"):
        data.load_folder(tmp_path / "nothere", size=8, channels=3)
    with pytest.raises(data.DataError, match="source: folder not found"):
        data.load_folder(tmp_path, size=8, channels=3)
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    with pytest.raises(data.DataError, match="no image files .the folder is empty"):
        data.load_folder(tmp_path, size=8, channels=3)
    (tmp_path / "source" / "notes.txt").write_text("hi")
    with pytest.raises(data.DataError, match="no image files .found only notes.txt"):
        data.load_folder(tmp_path, size=8, channels=3)
    (tmp_path / "source" / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (8, 8)).save(tmp_path / "target" / "ok.png")
    with pytest.raises(data.DataError, match="none of the 1 image files can be read.*broken.png"):
        data.load_folder(tmp_path, size=8, channels=3)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.png", "empty file"),
        ("truncated.png", "truncated"),
        ("text.png", "not an image file"),
        ("bomb.png", "decompression-bomb limit"),
        ("big.png", "decompression-bomb limit"),
        ("missing.png", "file not found"),
    ],
)
def test_read_image_errors_name_the_file_and_the_reason(tmp_path, write_bad_images, name, reason):
    write_bad_images(tmp_path)
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(data.DataError) as info:
        data.read_image(tmp_path / name, 8, 3)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / name}: cannot read image") and reason in message
    assert "expected a PNG" in message and "\n" not in message
    assert limit is not None and Image.MAX_IMAGE_PIXELS == limit  # the guard stays on


def test_folder_skips_unreadable_files_with_one_warning_that_counts_them(
    tmp_path, write_bad_images
):
    bad = write_bad_images(tmp_path / "source")
    (tmp_path / "target").mkdir()
    for name in ("a", "b"):
        value = {"a": 10, "b": 20}[name]
        for side in ("source", "target"):
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(tmp_path / side / f"{name}.png")
    with pytest.warns(data.SkippedFilesWarning) as record:
        source, target = data.load_folder(tmp_path, size=8, channels=1)
    assert len(record) == 1
    message = str(record[0].message)
    assert f"skipped {len(bad)} of {len(bad) + 2} image files" in message
    assert "\n" not in message
    for name in bad:  # every skipped file, with its reason
        assert f"source/{name} (" in message, name
    assert "source/big.png (over" in message and "source/empty.png (empty file)" in message
    np.testing.assert_allclose(source[:, 0, 0, 0], [10 / 255, 20 / 255], atol=1e-6)
    assert len(target) == 2

    # Paired: a pair with an unreadable file is left out as a whole.
    write_bad_images(tmp_path / "target")
    (tmp_path / "target" / "b.png").write_bytes(b"")
    with pytest.warns(data.SkippedFilesWarning, match=f"skipped {len(bad) + 1} of 7 pairs"):
        source, target = data.load_folder(tmp_path, size=8, channels=1, paired=True)
    np.testing.assert_allclose(source[:, 0, 0, 0], [10 / 255], atol=1e-6)
    np.testing.assert_allclose(target[:, 0, 0, 0], [10 / 255], atol=1e-6)
    (tmp_path / "target" / "a.png").write_bytes(b"GIF89a")
    with pytest.raises(data.DataError, match="none of the 7 pairs can be read"):
        data.load_folder(tmp_path, size=8, channels=1, paired=True)


def _grey_folder(root, values=(10, 20)):
    """``root/{source,target}/{a,b,...}.png``: 4x4 grey images, the i-th of value ``values[i]``."""
    for side in ("source", "target"):
        (root / side).mkdir(parents=True, exist_ok=True)
        for name, value in zip("abcdefgh", values):
            Image.fromarray(np.full((4, 4), value, np.uint8)).save(root / side / f"{name}.png")


def _skipped_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, data.SkippedFilesWarning)]


def test_folder_warns_once_per_folder_across_splits_and_repeated_loads(tmp_path):
    _grey_folder(tmp_path)
    (tmp_path / "source" / "empty.png").write_bytes(b"")
    (tmp_path / "target" / "text.png").write_text("not an image")
    cfg = SimpleNamespace(
        name="folder", data_dir=str(tmp_path), image_size=4, channels=1, paired=False
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loads = [data.load_dataset(cfg, split)[:2] for split in ("train", "test", "test")]
        loads.append(data.load_folder(tmp_path, size=4, channels=1))
    messages = _skipped_warnings(record)
    assert sorted(messages) == [
        f"{tmp_path / 'source'}: skipped 1 of 3 image files that cannot be read: "
        "source/empty.png (empty file)",
        f"{tmp_path / 'target'}: skipped 1 of 3 image files that cannot be read: "
        "target/text.png (not an image file Pillow can identify)",
    ]
    for x0, x1 in loads:
        np.testing.assert_allclose(x0[:, 0, 0, 0], [10 / 255, 20 / 255], atol=1e-6)
        np.testing.assert_array_equal(x0, x1)


def test_folder_repeat_loads_decode_once_and_stay_pure(tmp_path, monkeypatch):
    from jwarp.data import folders

    _grey_folder(tmp_path)
    decoded = []
    real_read = folders._read
    monkeypatch.setattr(folders, "_read", lambda f, *a: decoded.append(f) or real_read(f, *a))
    # Files changed in the last 2 s are never kept (a change within their timestamp's
    # granularity might not show): date these back, and let their ctime (now) pass.
    for f in tmp_path.glob("*/*.png"):
        os.utime(f, (1e9, 1e9))
    racy_ns = folders._RACY_NS
    monkeypatch.setattr(folders, "_RACY_NS", 0)

    first, _ = data.load_folder(tmp_path, size=4, channels=1)
    first[...] = 1.0  # the caller's array is its own
    again, _ = data.load_folder(tmp_path, size=4, channels=1)
    assert len(decoded) == 4  # the second load decoded nothing
    np.testing.assert_allclose(again[:, 0, 0, 0], [10 / 255, 20 / 255], atol=1e-6)
    data.load_folder(tmp_path, size=2, channels=1)  # another size: decoded again
    assert len(decoded) == 8

    # A changed file is read again, even one rewritten within its timestamp's granularity.
    monkeypatch.setattr(folders, "_RACY_NS", racy_ns)
    Image.fromarray(np.full((4, 4), 30, np.uint8)).save(tmp_path / "source" / "a.png")
    changed, _ = data.load_folder(tmp_path, size=4, channels=1)
    np.testing.assert_allclose(changed[:, 0, 0, 0], [30 / 255, 20 / 255], atol=1e-6)
    Image.fromarray(np.full((4, 4), 40, np.uint8)).save(tmp_path / "source" / "a.png")
    changed, _ = data.load_folder(tmp_path, size=4, channels=1)
    np.testing.assert_allclose(changed[:, 0, 0, 0], [40 / 255, 20 / 255], atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX symlinks and FIFOs")
def test_folder_names_symlink_loops_dangling_links_and_fifos(tmp_path):
    _grey_folder(tmp_path)
    source = tmp_path / "source"
    (source / "loop.png").symlink_to("loop.png")
    (source / "x.png").symlink_to("y.png")  # a loop through another link
    (source / "y.png").symlink_to("x.png")
    (source / "dangling.png").symlink_to("nowhere.png")
    (source / "c.png").symlink_to("a.png")  # a working link is an image like any other
    os.mkfifo(source / "fifo.png")  # opening it would wait for a writer forever
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        x0, _ = data.load_folder(tmp_path, size=4, channels=1)
        data.load_dataset(
            SimpleNamespace(
                name="folder", data_dir=tmp_path, image_size=4, channels=1, paired=False
            ),
            "test",
        )
    np.testing.assert_allclose(x0[:, 0, 0, 0], [10 / 255, 20 / 255, 10 / 255], atol=1e-6)
    (message,) = _skipped_warnings(record)
    assert message == (
        f"{source}: skipped 5 of 8 image files that cannot be read: "
        "source/dangling.png (dangling symlink to nowhere.png), "
        "source/fifo.png (a FIFO, not a regular file), source/loop.png (symlink loop), "
        "source/x.png (symlink loop), source/y.png (symlink loop)"
    )
    for name, reason in (
        ("loop.png", "symlink loop"),
        ("dangling.png", "dangling symlink to nowhere.png"),
        ("fifo.png", "a FIFO, not a regular file"),
    ):
        with pytest.raises(data.DataError) as info:
            data.read_image(source / name, 4, 1)
        assert str(info.value).startswith(f"{source / name}: cannot read image ({reason})")


def test_animated_files_give_their_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (40, 200, 120)]
    for side in ("source", "target"):
        (tmp_path / side).mkdir()
        frames[0].save(tmp_path / side / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "source" / "anim.gif") as im:
        assert im.n_frames == 3
    source, _ = data.load_folder(tmp_path, size=8, channels=1)
    np.testing.assert_allclose(source, 40 / 255, atol=1e-6)
    assert data.open_image(tmp_path / "source" / "anim.gif").info["n_frames"] == 3


# ------------------------------------------------------------------------------------------
# Arrays.
# ------------------------------------------------------------------------------------------


def test_array_nchw_and_nhwc_equal(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", source=nhwc, target=nhwc[:2])
    np.savez(
        tmp_path / "nchw.npz",
        source=nhwc.transpose(0, 3, 1, 2),
        target=nhwc[:2].transpose(0, 3, 1, 2),
    )
    a, b = data.load_array(tmp_path / "nhwc.npz"), data.load_array(tmp_path / "nchw.npz")
    assert a.scaling == b.scaling == "uint8/255"
    _assert_images(a.source, (5, 6, 7, 3))
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_allclose(a.source, nhwc / 255, atol=1e-7)


def test_array_npy_pairs_rules_and_conversion(tmp_path):
    pairs = np.random.default_rng(1).uniform(0, 1, (2, 3, 4, 8, 8)).astype(np.float32)
    np.save(tmp_path / "pairs.npy", pairs)  # [2, N, C, H, W], float in [0, 1]
    source, target, scaling = data.load_array(tmp_path / "pairs.npy")
    assert scaling == "float[0,1]"
    np.testing.assert_array_equal(source, pairs[0].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(target, pairs[1].transpose(0, 2, 3, 1))

    converted = data.load_array(tmp_path / "pairs.npy", size=5, channels=3)
    _assert_images(converted.source, (3, 5, 5, 3))

    np.savez(
        tmp_path / "u16.npz",
        source=np.full((2, 4, 4), 65535, np.uint16),
        target=np.zeros((3, 4, 4), np.uint16),
    )
    u16 = data.load_array(tmp_path / "u16.npz")
    assert u16.scaling == "uint16/65535"
    _assert_images(u16.source, (2, 4, 4, 1))
    np.testing.assert_array_equal(u16.source, 1.0)

    unit = np.random.default_rng(2).uniform(0, 1, (2, 4, 4, 1)).astype(np.float64)
    np.savez(tmp_path / "unit.npz", source=unit, target=unit)
    assert data.load_array(tmp_path / "unit.npz").scaling == "float[0,1]"


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"source": np.full((2, 4, 4, 1), np.nan), "target": np.zeros((2, 4, 4, 1))}, "NaN"),
        ({"source": np.full((2, 4, 4, 1), np.inf), "target": np.zeros((2, 4, 4, 1))}, "NaN"),
        ({"source": np.zeros((2, 4, 4, 1, 1)), "target": np.zeros((2, 4, 4, 1))}, "rank"),
        ({"source": np.zeros((2, 6, 6, 5)), "target": np.zeros((2, 6, 6, 5))}, "channel"),
        ({"source": np.full((2, 4, 4, 1), -1.0), "target": np.zeros((2, 4, 4, 1))}, "values"),
        (
            {
                "source": np.zeros((2, 4, 4, 1), np.int32),
                "target": np.zeros((2, 4, 4, 1), np.int32),
            },
            "dtype",
        ),
        ({"source": np.zeros((2, 4, 4, 1)), "target": np.zeros((2, 5, 5, 1))}, "differ"),
        ({"images": np.zeros((2, 4, 4, 1))}, "'source' and 'target'"),
    ],
)
def test_array_rejects_bad_npz(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as error:
        data.load_array(path)
    assert "bad.npz" in str(error.value)


def _array_error(path):
    """``load_array``'s one-line ``DataError`` message for ``path``."""
    with pytest.raises(data.DataError) as info:
        data.load_array(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(0, 8, 8, 1), (2, 0, 8, 1), (2, 8, 8, 0), (0, 8, 8), (0,)])
def test_array_empty_arrays_are_one_line_errors_naming_the_array(tmp_path, dtype, shape):
    path = tmp_path / "empty.npz"
    np.savez(path, source=np.zeros((2, 8, 8, 1), dtype), target=np.zeros(shape, dtype))
    message = _array_error(path)
    assert message.startswith(f"{path} [target]: empty array of shape {shape}")


def test_array_empty_npy_pairs_are_one_line_errors(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((2, 0, 8, 8, 1), np.float32))
    assert _array_error(path).startswith(f"{path} [source]: empty array of shape (0, 8, 8, 1)")


def test_array_floats_outside_unit_range_are_errors_naming_the_range(tmp_path):
    """Floats are never rescaled: 0..255 (or below 0) is an error, not a division by 255."""
    ok = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    cases = {
        "source": np.linspace(0, 255, 32, dtype=np.float32).reshape(2, 4, 4, 1),
        "target": np.linspace(-0.5, 0.75, 32, dtype=np.float32).reshape(2, 4, 4, 1),
    }
    for name, bad in cases.items():
        path = tmp_path / f"bad_{name}.npz"
        np.savez(path, **{"source": ok, "target": ok, name: bad})
        message = _array_error(path)
        lo, hi = f"{bad.min():g}", f"{bad.max():g}"
        assert message.startswith(f"{path} [{name}]: float32 values range {lo}..{hi};")
        assert "expected floats in [0, 1]" in message and "uint8 0..255" in message
    # The same images as uint8 0..255 are fine, and so are floats that reach 0 and 1 exactly.
    np.savez(tmp_path / "u8.npz", source=np.uint8(cases["source"]), target=np.uint8(ok * 255))
    assert data.load_array(tmp_path / "u8.npz").scaling == "uint8/255"
    edges = np.array([0.0, 1.0] * 16, np.float32).reshape(2, 4, 4, 1)
    np.savez(tmp_path / "edges.npz", source=edges, target=edges)
    np.testing.assert_array_equal(data.load_array(tmp_path / "edges.npz").source, edges)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_array_non_finite_floats_are_one_line_errors_naming_the_array(tmp_path, bad_value):
    target = np.full((2, 4, 4, 1), 0.5, np.float32)
    target[1, 2, 3, 0] = bad_value
    path = tmp_path / "nan.npz"
    np.savez(path, source=np.zeros((2, 4, 4, 1), np.float32), target=target)
    message = _array_error(path)
    assert message.startswith(f"{path} [target]: 1 of 32 values are NaN or Inf")


def test_array_rejects_object_and_bad_npy(tmp_path):
    objects = np.empty((2, 1, 4, 4, 1), dtype=object)
    objects[...] = 0.5
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npy.*object"):
        data.load_array(tmp_path / "objects.npy")
    np.savez(tmp_path / "objects.npz", source=objects[0], target=objects[1])
    with pytest.raises(ValueError, match="objects.npz.*object"):
        data.load_array(tmp_path / "objects.npz")
    np.save(tmp_path / "single.npy", np.zeros((3, 4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match=r"single.npy.*\[2, N"):
        data.load_array(tmp_path / "single.npy")


def test_array_never_unpickles_and_names_damaged_files(tmp_path, monkeypatch):
    import pickle

    def no_unpickling(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    good = np.zeros((2, 2, 4, 4, 1), np.uint8)
    np.save(tmp_path / "good.npy", good)
    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"source": good[0], "target": good[1]}))
    (tmp_path / "disguised.npy").write_bytes((tmp_path / "data.pkl").read_bytes())
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:90])
    np.savez(tmp_path / "good.npz", source=good[0], target=good[1])
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:60])
    np.save(tmp_path / "complex.npy", good.astype(np.complex64))
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    cases = {
        "data.pkl": "pickle files are never loaded",
        "disguised.npy": "looks like a pickle",
        "cut.npy": "truncated or damaged",
        "cut.npz": "truncated or damaged",
        "complex.npy": "dtype complex64; expected numeric",
        "missing.npz": "file not found",
    }
    for name, needle in cases.items():
        with pytest.raises(data.DataError) as info:
            data.load_array(tmp_path / name)
        message = str(info.value)
        assert message.startswith(str(tmp_path / name)) and needle in message, message
        assert "\n" not in message
        if name == "data.pkl":
            assert "convert it once with numpy: np.savez(" in message


# ------------------------------------------------------------------------------------------
# Batches.
# ------------------------------------------------------------------------------------------


def _tagged(n, offset=0.0):
    """Images whose every pixel holds their index: [n, 2, 2, 1]."""
    return np.broadcast_to((np.arange(n) + offset)[:, None, None, None], (n, 2, 2, 1)) / 100


def _ids(batch, key, offset=0.0):
    return np.round(batch[key][:, 0, 0, 0] * 100 - offset).astype(int)


def test_batches_paired_epoch_coverage_and_determinism():
    x0, x1 = _tagged(23), _tagged(23, offset=50)
    batches = data.Batches(x0, x1, batch_size=5, paired=True, seed=3)
    assert batches.steps_per_epoch == 4  # the incomplete 5th batch is dropped
    epochs = []
    for _ in range(2):
        seen = []
        for _ in range(batches.steps_per_epoch):
            batch = next(batches)
            _assert_images(batch["x0"], (5, 2, 2, 1))
            np.testing.assert_array_equal(_ids(batch, "x0"), _ids(batch, "x1", offset=50))
            seen.extend(_ids(batch, "x0"))
        assert len(set(seen)) == 20  # each item at most once per epoch
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled per epoch
    assert batches.state() == {"epoch": 2, "index": 0}
    again = data.Batches(x0, x1, batch_size=5, paired=True, seed=3)
    assert [x for _ in range(8) for x in _ids(next(again), "x0")] == epochs[0] + epochs[1]


def test_batches_unpaired_every_item_once_per_epoch():
    batches = data.Batches(_tagged(12), _tagged(12), batch_size=4, paired=False, seed=0)
    first = [next(batches) for _ in range(3)]
    ids0 = np.concatenate([_ids(b, "x0") for b in first])
    ids1 = np.concatenate([_ids(b, "x1") for b in first])
    assert sorted(ids0) == sorted(ids1) == list(range(12))
    assert not np.array_equal(ids0, ids1)  # independent permutations


def test_batches_restore_continues_identically():
    x0, x1 = _tagged(10), _tagged(13)
    run = data.Batches(x0, x1, batch_size=3, paired=False, seed=9)
    for _ in range(4):
        next(run)
    state = run.state()
    expected = [next(run) for _ in range(5)]
    resumed = data.Batches(x0, x1, batch_size=3, paired=False, seed=9)
    resumed.restore(state)
    for want, got in zip(expected, (next(resumed) for _ in range(5)), strict=True):
        np.testing.assert_array_equal(want["x0"], got["x0"])
        np.testing.assert_array_equal(want["x1"], got["x1"])
    with pytest.raises(ValueError, match="state"):
        resumed.restore({"epoch": 0, "index": 99})


def test_batches_errors():
    with pytest.raises(ValueError, match="batch_size"):
        data.Batches(_tagged(4), _tagged(4), batch_size=5, paired=True)
    with pytest.raises(ValueError, match="equal sizes"):
        data.Batches(_tagged(4), _tagged(5), batch_size=2, paired=True)


def test_nearest_pairs_match_each_source_with_its_closest_target():
    from scipy.spatial.distance import cdist

    from jwarp.data import nearest_pairs

    rng = np.random.default_rng(0)
    sources, targets = rng.random((6, 4, 5, 1)), rng.random((9, 4, 5, 1))
    a, b = nearest_pairs(sources, targets, 4)
    want = cdist(sources[:4].reshape(4, -1), targets.reshape(9, -1), "sqeuclidean").argmin(1)
    np.testing.assert_array_equal(a, sources[:4])
    np.testing.assert_array_equal(b, targets[want])
