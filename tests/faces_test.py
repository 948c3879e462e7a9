"""jwarp.faces: landmarks to similarities, crops, the crop's motion carried into the photo."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from jwarp.faces.align import (
    DEFAULT_CROP,
    CanonicalCrop,
    Similarity,
    bilinear,
    crop_face,
    fit_similarity,
    footprint,
    resample,
    to_crop,
)
from jwarp.faces.inplace import FaceMotion, Layer, PhotoAnimation, crop_window, photo_displacement
from jwarp.sampler import warp


def _similarity(scale, angle, shift) -> Similarity:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return Similarity(np.array([[c, -s, shift[0]], [s, c, shift[1]]]))


def _ramp(h, w, c=3):
    """An image that is affine in (row, col) per channel: bilinear sampling is exact on it."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    planes = [(0.2 + 0.5 * rows / h + 0.2 * cols / w) * (k + 1) / c for k in range(c)]
    return np.stack(planes, axis=-1).astype(np.float32)


class TestSimilarity:
    def test_recovers_a_known_similarity_from_exact_points(self):
        rng = np.random.default_rng(0)
        truth = _similarity(0.37, 0.4, (12.0, -30.0))
        src = rng.uniform(0, 500, (5, 2))
        got = fit_similarity(src, truth.apply(src), rng.uniform(0.2, 1.0, 5))
        np.testing.assert_allclose(got.matrix, truth.matrix, atol=1e-9)
        assert got.scale == pytest.approx(0.37)

    def test_weighted_least_squares_matches_a_numerical_minimum(self):
        """The closed form is the minimum of the weighted squared error over (a, b, tx, ty)."""
        from scipy.optimize import minimize

        rng = np.random.default_rng(1)
        src, dst = rng.normal(size=(5, 2)) * 40, rng.normal(size=(5, 2)) * 20
        w = rng.uniform(0.1, 1.0, 5)

        def cost(p):
            m = np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]]])
            return np.sum(w * np.sum((Similarity(m).apply(src) - dst) ** 2, axis=1))

        best = minimize(cost, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).fun
        assert cost(fit_similarity(src, dst, w).matrix[[0, 1, 0, 1], [0, 0, 2, 2]]) <= best + 1e-6

    def test_inverse_and_composition(self):
        a, b = _similarity(2.0, 0.3, (1.0, 2.0)), _similarity(0.5, -1.1, (-4.0, 7.0))
        p = np.array([[3.0, 4.0], [-2.0, 10.0]])
        np.testing.assert_allclose(a.inverse().apply(a.apply(p)), p, atol=1e-12)
        np.testing.assert_allclose(a.then(b).apply(p), b.apply(a.apply(p)), atol=1e-12)

    def test_degenerate_points_are_refused(self):
        with pytest.raises(ValueError, match="coincide"):
            fit_similarity(np.ones((5, 2)), np.zeros((5, 2)))

    def test_canonical_crop_checks_its_points(self):
        with pytest.raises(ValueError, match="10"):
            CanonicalCrop((0.5, 0.5))
        crop = CanonicalCrop(DEFAULT_CROP)
        assert crop.eye_distance == pytest.approx(0.5)
        # The template's landmarks land on themselves.
        np.testing.assert_allclose(to_crop(crop.pixels(64), crop, 64).matrix,
                                   [[1, 0, 0], [0, 1, 0]], atol=1e-12)


class TestResample:
    def test_crop_of_an_affine_ramp_is_exact(self):
        """Bilinear sampling of an affine image is exact: the crop equals the ramp at the
        mapped points (a scale near 1: no antialiasing filter)."""
        image = _ramp(200, 240)
        to = _similarity(1.1, 0.35, (-60.0, -40.0))
        got = crop_face(image, to, 48)
        q = np.stack(np.meshgrid(np.arange(48), np.arange(48), indexing="ij"), -1).reshape(-1, 2)
        p = to.inverse().apply(q)
        assert np.all((p >= 0) & (p <= [199, 239]))  # the test's crop lies inside the image
        want = (0.2 + 0.5 * p[:, 0] / 200 + 0.2 * p[:, 1] / 240)[:, None] * (np.arange(3) + 1) / 3
        np.testing.assert_allclose(got.reshape(-1, 3), want, atol=2e-6)

    def test_a_large_face_is_antialiased(self):
        """Stripes one photo pixel wide average to grey in a crop 8x smaller, instead of
        aliasing into bands."""
        image = np.zeros((512, 512, 1), np.float32)
        image[:, ::2] = 1.0
        got = resample(image, _similarity(1 / 8, 0.0, (0.0, 0.0)), (64, 64))
        assert np.abs(got[4:-4, 4:-4] - 0.5).max() < 0.05

    def test_footprint_holds_the_crop(self):
        to = _similarity(0.25, 0.5, (-10.0, -20.0))
        top, left, bottom, right = footprint(to, 64, (1000, 1000))
        corners = to.inverse().apply(np.array([[0, 0], [0, 63], [63, 0], [63, 63]]))
        corners = np.clip(corners, 0, 999)  # the box is clipped to the photo
        assert np.all(corners >= [top, left]) and np.all(corners < [bottom, right])
        assert top > 10 and footprint(to, 64, (1000, 1000), margin=10)[0] == top - 10


class TestInPlace(chex.TestCase):
    def test_window_is_one_inside_zero_outside_and_symmetric(self):
        size = 64
        q = jnp.stack(jnp.meshgrid(jnp.arange(-8.0, 72.0), jnp.arange(-8.0, 72.0),
                                   indexing="ij"), -1)
        w = np.asarray(crop_window(q, size))
        assert w.max() == 1.0 and np.all(w[:8] == 0) and np.all(w[:, -8:] == 0)
        assert np.all(w[8 + 20 : 8 + 44, 8 + 20 : 8 + 44] == 1.0)
        np.testing.assert_allclose(w, w[::-1, ::-1], atol=1e-6)
        np.testing.assert_allclose(w, w.T, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_displacement_turns_and_scales_back_to_photo_pixels(self):
        """A constant crop displacement, carried through a similarity of scale s and angle a,
        is the same vector turned back by -a and divided by s where the window is 1."""
        to = _similarity(0.5, 0.6, (-20.0, -10.0))  # region -> crop
        u_crop = jnp.broadcast_to(jnp.array([1.5, -0.5], jnp.float32), (2, 32, 32, 2))
        fn = self.variant(photo_displacement, static_argnames=("shape", "window"))
        u = np.asarray(fn(u_crop, jnp.asarray(to.matrix, jnp.float32), (160, 160)))
        q = to.apply(np.stack(np.meshgrid(np.arange(160), np.arange(160), indexing="ij"), -1))
        inside = np.all((q > 8) & (q < 23), axis=-1)  # the window's flat middle
        want = np.linalg.inv(to.matrix[:, :2]) @ np.array([1.5, -0.5])
        np.testing.assert_allclose(u[0][inside], np.broadcast_to(want, u[0][inside].shape),
                                   atol=1e-4)
        outside = np.any((q < -0.5) | (q > 31.5), axis=-1)
        assert np.all(u[:, outside] == 0.0)

    def _animation(self, photo, disp, to, **kw):
        return PhotoAnimation([Layer(photo, [FaceMotion(to, disp)],
                                     np.ones(len(disp), np.float32))], **kw)

    def test_photo_frames_match_the_crop_animation(self):
        """The motion carried into the photo, cropped back to the canonical crop, is the
        crop warped by the crop's own field (where the window is 1): the photo moves as the
        model moved the crop."""
        photo = _ramp(300, 320) ** 2  # smooth, not affine
        to = _similarity(0.9, 0.3, (-80.0, -60.0))
        g = np.stack(np.meshgrid(np.arange(64), np.arange(64), indexing="ij"), -1) - 31.5
        u = (np.stack([g[..., 1], -g[..., 0]], -1) * 0.06 *
             np.exp(-(g ** 2).sum(-1) / (2 * 14 ** 2))[..., None]).astype(np.float32)
        disp = np.stack([0 * u, u])
        last = self._animation(photo, disp, to)[1].astype(np.float32) / 255
        got = crop_face(last, to, 64)
        want = np.asarray(warp(jnp.asarray(crop_face(photo, to, 64)[None]),
                               jnp.asarray(u[None])))[0]
        middle = (slice(20, 44), slice(20, 44))
        assert np.abs(got[middle] - want[middle]).max() < 3 / 255

    def test_frames_keep_size_channels_and_everything_far_from_the_face(self):
        rng = np.random.default_rng(2)
        photo = rng.uniform(size=(200, 300, 4)).astype(np.float32)  # RGBA
        photo = np.round(photo * 255) / 255
        to = _similarity(0.5, 0.0, (-30.0, -60.0))  # the crop covers rows 60..188, cols 120..248
        disp = np.zeros((3, 64, 64, 2), np.float32)
        disp[1:, 16:48, 16:48] = [2.0, -3.0]
        anim = self._animation(photo, disp, to)
        assert anim.shape == (3, 200, 300, 4) and anim[0].dtype == np.uint8
        as_uint8 = np.round(photo * 255).astype(np.uint8)
        np.testing.assert_array_equal(anim[0], as_uint8)  # frame 0 is the photo
        top, left, bottom, right = footprint(to, 64, (200, 300))
        outside = np.ones((200, 300), bool)
        outside[top:bottom, left:right] = False
        for frame in anim:
            np.testing.assert_array_equal(frame[outside], as_uint8[outside])
        assert np.any(anim[2] != as_uint8)

    def test_faces_with_overlapping_boxes_share_one_region(self):
        photo = np.zeros((100, 200, 3), np.float32)
        disp = np.ones((2, 32, 32, 2), np.float32)
        near = [FaceMotion(_similarity(1.0, 0.0, (-10.0, -10.0 - dx)), disp) for dx in (0, 20)]
        far = [FaceMotion(_similarity(1.0, 0.0, (-10.0, -10.0 - dx)), disp) for dx in (0, 120)]
        ones = np.ones(2, np.float32)
        assert len(PhotoAnimation([Layer(photo, near, ones)]).regions) == 1
        assert len(PhotoAnimation([Layer(photo, far, ones)]).regions) == 2

    def test_grid_lines_move_with_the_face(self):
        photo = np.full((120, 120, 3), 0.2, np.float32)
        to = _similarity(1.0, 0.0, (-28.0, -28.0))
        disp = np.zeros((2, 64, 64, 2), np.float32)
        disp[1, 24:40, 24:40] = [0.0, 3.0]
        anim = self._animation(photo, disp, to, grid=8)
        assert not np.array_equal(anim[0], anim[1])
        assert np.array_equal(anim[0][:20], anim[1][:20])  # far from the face: the same lines


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Real colour photos (MIT licence, ../shared/data/photos)."""
    folder = SHARED_DATA / "photos"
    if not folder.is_dir():
        pytest.skip(f"real photos {folder} not found (set JWARP_SHARED_DATA)")
    read = lambda n: np.asarray(Image.open(folder / n).convert("RGB"), np.float32) / 255  # noqa
    return {n: read(n) for n in ("two_people.jpg", "obama-480p.jpg")}


class TestDetect:
    def test_finds_every_face_with_landmarks_in_place(self, photos):
        from jwarp.faces.detect import detect_faces

        faces = detect_faces(photos["two_people.jpg"])
        assert len(faces) == 2
        for f in faces:
            eyes, nose, mouth = f.landmarks[:2], f.landmarks[2], f.landmarks[3:]
            assert eyes[:, 0].max() < nose[0] < mouth[:, 0].min()  # eyes, nose, mouth downwards
            assert eyes[0, 1] < eyes[1, 1] and mouth[0, 1] < mouth[1, 1]  # right eye on the left
            top, left, height, width = f.box
            assert np.all((f.landmarks >= [top, left]) & (f.landmarks <= [top + height,
                                                                          left + width]))
        assert sorted(f.box[1] for f in faces)[1] > 500  # one on each side of the photo

    def test_nothing_in_images_without_a_face(self):
        from jwarp.faces.detect import detect_faces

        rng = np.random.default_rng(0)
        ramp = np.broadcast_to(np.linspace(0, 1, 320)[None, :, None], (240, 320, 3))
        assert detect_faces(ramp) == []
        assert detect_faces(rng.uniform(size=(200, 300, 1))) == []

    def test_a_face_that_fills_the_image_is_found(self, photos):
        """A tight crop, as SMILEsmileD's: the retry on a bordered copy finds it, and maps the
        landmarks back to where they were in the photo."""
        from jwarp.faces.detect import detect_faces

        photo = photos["obama-480p.jpg"]
        (face,) = detect_faces(photo)
        top, left, height, width = (int(v) for v in face.box)
        tight = photo[top + height // 4 : top + height, left : left + width]
        (inside,) = detect_faces(tight)
        offset = np.array([top + height // 4, left])
        assert np.abs(inside.landmarks + offset - face.landmarks).max() < 0.08 * width


def test_a_models_own_window_keeps_the_motion_inside_its_box():
    """A model whose velocity has a window (``out_mask``) brings it: nothing moves outside it,
    even where the crop's field says otherwise."""
    to = _similarity(1.0, 0.0, (0.0, 0.0))
    u_crop = jnp.ones((1, 32, 32, 2), jnp.float32)
    box = (0.25, 0.5, 0.75, 1.0, 0.1)
    u = np.asarray(photo_displacement(u_crop, jnp.asarray(to.matrix, jnp.float32), (32, 32), box))
    rows = (np.arange(32) + 0.5) / 32
    assert np.all(u[0][(rows < 0.25) | (rows > 0.75)] == 0) and np.all(u[0][:, :16] == 0)
    assert np.allclose(u[0][12:20, 20:28], 1.0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (7, 9)])
def test_bilinear_reads_as_scipy_map_coordinates_with_edges_repeated(shape):
    from scipy import ndimage

    rng = np.random.default_rng(0)
    image = rng.random((*shape, 3)).astype(np.float32)
    coords = rng.uniform(-3, max(shape) + 3, (400, 2))
    coords[:3] = [[0, 0], [shape[0] - 1, shape[1] - 1], [shape[0] - 1.5, 0.25]]
    expected = np.stack(
        [ndimage.map_coordinates(image[..., c], coords.T, order=1, mode="nearest")
         for c in range(3)], axis=-1)
    np.testing.assert_allclose(bilinear(image, coords), expected, atol=1e-6)
