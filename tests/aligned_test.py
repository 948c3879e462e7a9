"""Aligned face data (jwarp.data.aligned, fei), augmentation, and the settings that use them."""

import dataclasses

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from jwarp.config import ConfigError, load_config
from jwarp.data import Batches
from jwarp.data.aligned import align_files
from jwarp.data.augment import AugmentConfig, apply, augment, draw
from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop
from jwarp.models import box_window

CROP = CanonicalCrop(DEFAULT_CROP)


@pytest.fixture(scope="module")
def face_files(tmp_path_factory):
    """Three real photos' faces (MIT licence) and one image without a face."""
    src = SHARED_DATA / "photos"
    if not src.is_dir():
        pytest.skip(f"real photos {src} not found (set JWARP_SHARED_DATA)")
    out = tmp_path_factory.mktemp("faces")
    files = []
    for name in ("obama-480p.jpg", "biden2.jpg", "alex_lacamoire1.jpg"):
        image = Image.open(src / name)
        image.thumbnail((600, 600))
        image.save(out / name)
        files.append(out / name)
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(out / "grey.png")
    return [*files, out / "grey.png"]


def test_aligned_faces_put_the_landmarks_where_the_crop_says(face_files):
    from jwarp.faces.detect import detect_faces

    got = align_files(face_files, CROP, 64, 3, cache=False)
    assert got.images.shape == (3, 64, 64, 3) and list(got.kept) == [0, 1, 2]
    assert len(got.missing) == 1 and "grey.png (no face found)" in got.missing[0]
    template = CROP.pixels(64)
    for image in got.images:
        # Found again in the crop, where the crop put it (up to the detector's own scatter
        # on a 64-pixel face, about 2 pixels): the eyes' midpoint, their distance and angle.
        (face,) = detect_faces(image)
        eyes, want = face.landmarks[:2], template[:2]
        assert np.abs(eyes.mean(0) - want.mean(0)).max() < 3.0
        assert abs(face.eye_distance / np.hypot(*(want[1] - want[0])) - 1) < 0.15
        assert abs(np.arctan2(*(eyes[1] - eyes[0]))) < 0.15  # level: (row, col) of the line


def test_aligned_faces_are_cached_and_realigned_when_a_file_changes(
    face_files, tmp_path, monkeypatch
):
    import jwarp.faces.detect as detect

    monkeypatch.setenv("JWARP_CACHE_DIR", str(tmp_path / "cache"))
    first = align_files(face_files[:2], CROP, 32, 1)
    assert len(list((tmp_path / "cache" / "aligned").glob("*.npz"))) == 1
    fresh = align_files(face_files[:2], CROP, 32, 1, cache=False)
    np.testing.assert_allclose(first.images, fresh.images, atol=1e-3)  # kept as float16
    calls = []
    real = detect.detect_faces
    monkeypatch.setattr(detect, "detect_faces", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = align_files(face_files[:2], CROP, 32, 1)
    assert calls == []  # from the cache
    np.testing.assert_array_equal(again.images, first.images)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(face_files[0].read_bytes())
    align_files([copy], CROP, 32, 1)
    Image.open(face_files[1]).save(copy, format="JPEG")  # the same path, another face
    changed = align_files([copy], CROP, 32, 1)
    assert calls == [1, 1]  # aligned again both times
    assert np.abs(changed.images[0] - first.images[1]).mean() < 0.03  # JPEG saved again


def test_fei_pairs_split_by_person_and_stay_registered():
    from jwarp.data.fei import fei_pairs, load_fei

    folder = SHARED_DATA / "FEI"
    if not folder.is_dir():
        pytest.skip(f"FEI {folder} not found")
    train, test = fei_pairs(folder, "train"), fei_pairs(folder, "test")
    people = lambda files: {f.stem[:-1] for f in files}  # noqa: E731
    assert not people(train[0]) & people(test[0])
    assert people(train[0]) == people(train[1]) and len(test[0]) >= 15
    neutral, smiling = load_fei(folder, "test", 64, 1, CROP)
    assert neutral.shape == smiling.shape and len(neutral) == len(test[0])
    # One transform per pair: the person's eyes stay put while the mouth moves.
    eyes = (slice(10, 22), slice(8, 56))
    mouth = (slice(44, 56), slice(16, 48))
    diff = np.abs(neutral - smiling).mean(axis=(0, 3))
    assert diff[mouth].mean() > 1.5 * diff[eyes].mean()


class TestAugment:
    def test_off_by_default_and_the_same_for_a_pair(self):
        rng = np.random.default_rng(0)
        x = rng.uniform(size=(4, 16, 16, 3)).astype(np.float32)
        assert not AugmentConfig().active
        np.testing.assert_array_equal(apply(x, draw(rng, 4, AugmentConfig()), AugmentConfig()), x)
        cfg = AugmentConfig(brightness=0.1, contrast=0.2, gamma=0.2, blur=1.0, noise=0.02,
                            shift=2.0, rotate=10.0, scale=0.1, flip=True)
        a, b = augment(np.random.default_rng(1), cfg, x, x.copy())
        np.testing.assert_array_equal(a, b)  # partners get the same change
        c = augment(np.random.default_rng(1), cfg, x)
        np.testing.assert_array_equal(a, c)  # deterministic in the generator
        assert not np.allclose(a, x) and a.min() >= 0 and a.max() <= 1

    def test_a_shift_moves_the_image_and_a_flip_mirrors_it(self):
        from scipy import ndimage

        x = np.random.default_rng(2).uniform(size=(1, 20, 24, 1)).astype(np.float32)
        cfg = AugmentConfig(shift=3.0)
        p = draw(np.random.default_rng(0), 1, cfg)
        p["shift"][:] = [2.0, -1.0]
        want = ndimage.shift(x[0, ..., 0], (2.0, -1.0), order=1, mode="nearest")
        np.testing.assert_allclose(apply(x, p, cfg)[0, ..., 0], want, atol=1e-5)
        cfg = AugmentConfig(flip=True)
        p = draw(np.random.default_rng(0), 1, cfg)
        p["flip"][:] = True
        np.testing.assert_allclose(apply(x, p, cfg), x[:, :, ::-1], atol=1e-5)

    def test_stroke_thickens_and_thins_as_grey_dilation_and_erosion(self):
        from scipy import ndimage

        x = np.random.default_rng(4).uniform(size=(3, 12, 10, 1)).astype(np.float32)
        cross = ndimage.generate_binary_structure(2, 1)
        cfg = AugmentConfig(stroke=2.0)
        p = draw(np.random.default_rng(0), 3, cfg)
        p["stroke"][:] = [1.0, -2.0, 0.5]
        out = apply(x, p, cfg)[..., 0]
        dilate = lambda a: ndimage.grey_dilation(a, footprint=cross, mode="nearest")  # noqa: E731
        erode = lambda a: ndimage.grey_erosion(a, footprint=cross, mode="nearest")  # noqa: E731
        np.testing.assert_allclose(out[0], dilate(x[0, ..., 0]), atol=1e-6)
        np.testing.assert_allclose(out[1], erode(erode(x[1, ..., 0])), atol=1e-6)
        np.testing.assert_allclose(out[2], (x[2, ..., 0] + dilate(x[2, ..., 0])) / 2, atol=1e-6)

    def test_a_new_change_leaves_the_other_amounts_as_they_were(self):
        # Runs without stroke draw what they drew before it existed (resumes stay bit for bit).
        cfg = AugmentConfig(brightness=0.1, shift=2.0, flip=True)
        rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
        a = [draw(rng_a, 4, cfg) for _ in range(2)]
        b = [draw(rng_b, 4, dataclasses.replace(cfg, stroke=1.0)) for _ in range(2)]
        for key in a[0]:
            if key != "stroke":
                np.testing.assert_array_equal(a[0][key], b[0][key])
        assert not np.array_equal(a[1]["shift"], b[1]["shift"])  # (the draw order is shared)
        assert np.all(a[0]["stroke"] == 0) and np.any(b[0]["stroke"] != 0)

    def test_batches_are_augmented_reproducibly_and_resume_the_same(self):
        rng = np.random.default_rng(3)
        x0 = rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)
        cfg = AugmentConfig(brightness=0.2, shift=1.0)
        stream = Batches(x0, x0.copy(), 2, paired=True, seed=5, augment=cfg)
        first = [next(stream) for _ in range(3)]
        np.testing.assert_array_equal(first[0]["x0"], first[0]["x1"])  # pairs change alike
        again = Batches(x0, x0.copy(), 2, paired=True, seed=5, augment=cfg)
        next(again)
        state = again.state()
        resumed = Batches(x0, x0.copy(), 2, paired=True, seed=5, augment=cfg)
        resumed.restore(state)
        np.testing.assert_array_equal(next(resumed)["x0"], first[1]["x0"])
        plain = Batches(x0, x0.copy(), 2, paired=True, seed=5)
        assert not np.array_equal(next(plain)["x0"], first[0]["x0"])


def test_box_window_is_one_inside_zero_outside_and_smooth():
    w = box_window(64, 64, (0.25, 0.125, 1.0, 0.875, 0.125))
    assert w.shape == (64, 64) and w.max() == 1.0
    assert np.all(w[:16] == 0) and np.all(w[:, :8] == 0) and np.all(w[:, 56:] == 0)
    assert np.all(w[24:56, 16:48] == 1.0)
    steps = np.abs(np.diff(w, axis=0)).max()
    assert steps < 0.2  # no jump: a smooth ramp over 8 pixels


def test_masked_velocity_is_zero_outside_its_box():
    import jax
    import jax.numpy as jnp

    from jwarp.models import UNet, UNetConfig

    cfg = UNetConfig.tiny(out_mask=(0.25, 0.25, 0.75, 0.75, 0.1), final_init_std=0.1)
    net = UNet(cfg)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 32, 32, 1)), jnp.float32)
    v = np.asarray(net.apply(net.init(jax.random.key(0), x), x))
    assert np.all(v[:, :8] == 0) and np.all(v[:, :, 24:] == 0)
    assert np.abs(v[:, 12:20, 12:20]).min() > 0


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"data.align": True}, "data.align: 'faces' images are not photos of faces"),
        ({"data.name": "smiles", "data.data_dir": "x", "data.paired": False,
          "data.fei_dir": "y"}, "data.fei_dir: FEI faces join"),
        ({"data.crop": [0.5] * 9}, "data.crop: expected 10 fractions"),
        ({"data.crop": [0.5] * 9 + [1.5]}, "data.crop: expected 10 fractions"),
        ({"data.augment.rotate": -1.0}, "data.augment.rotate: expected a number >= 0"),
        ({"model.unet.out_mask": [0.5, 0.0, 0.4, 1.0, 0.1]}, "model.unet.out_mask: expected"),
        ({"data.name": "fei", "data.data_dir": "x", "data.paired": False}, "always paired"),
    ],
)
def test_bad_face_settings_are_one_line_errors(overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")) as e:
        load_config(None, overrides)
    assert "\n" not in str(e.value)


def test_face_settings_round_trip_through_a_run_folders_config(tmp_path):
    from jwarp.config import save_config

    config = load_config(None, {"data.name": "smiles", "data.data_dir": "s", "data.paired": False,
                                "loss.mode": "gan", "data.align": True, "data.augment.flip": True,
                                "data.crop": [0.3] * 10, "model.unet.out_mask": [0, 0, 1, 1, 0.1]})
    save_config(config, tmp_path / "config.toml")
    again = load_config(str(tmp_path / "config.toml"))
    assert again == config and again.data.canonical_crop == CanonicalCrop((0.3,) * 10)
