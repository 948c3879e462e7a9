"""animate.py on whole photos: faces found, moved in place, the photo's size and colours kept,
everything away from the faces left as it was (jwarp.render with jwarp.faces)."""

import json

import jax
import numpy as np
import pytest
from conftest import SHARED_DATA
from flax import serialization
from PIL import Image

from jwarp import pretrained
from jwarp.config import load_config, save_config
from jwarp.errors import AnimationError
from jwarp.faces.detect import detect_faces
from jwarp.faces.evaluate import far_mask
from jwarp.optim import create_states
from jwarp.render import RenderOptions, render


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Real colour photos (MIT licence), made smaller so that the tests stay fast, and an image
    without a face."""
    src = SHARED_DATA / "photos"
    if not src.is_dir():
        pytest.skip(f"real photos {src} not found (set JWARP_SHARED_DATA)")
    out = tmp_path_factory.mktemp("photos")
    for name, side in (("two_people.jpg", 480), ("obama-480p.jpg", 400),
                       ("obama-1080p.jpg", 500), ("alex-lacamoire.png", 300)):
        image = Image.open(src / name)
        image.thumbnail((side, side))
        image.save(out / (name.rsplit(".", 1)[0] + ".png"))
    # A cut-out portrait: transparent outside an ellipse around the man.
    rgba = np.array(Image.open(out / "alex-lacamoire.png").convert("RGBA"))
    h, w = rgba.shape[:2]
    rows, cols = np.mgrid[:h, :w]
    rgba[..., 3] = np.where(((rows - h / 2) / (0.5 * h)) ** 2 + ((cols - w / 2) / (0.4 * w)) ** 2
                            < 1, 255, 0)
    Image.fromarray(rgba).save(out / "alex-lacamoire.png")
    ramp = np.broadcast_to(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 200, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(out / "no_face.png")
    return out


@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    """A model folder (as ``python -m jwarp.pretrained`` writes) of a tiny face model trained
    on aligned faces: untrained, its random field moves the crop by a few pixels, which is all
    these tests need to see."""
    config = load_config("smoke", {
        "data.name": "smiles", "data.data_dir": "SMILEsmileD", "data.paired": False,
        "data.align": True, "data.image_size": 32, "data.channels": 1, "loss.mode": "gan",
        "flow.field": "stationary", "model.unet.out_scale": 60.0,
        "model.unet.final_init_std": 0.05, "model.unet.out_sigma": 2.0,
        "model.unet.out_mask": [0.2, 0.1, 0.97, 0.9, 0.15],
    })
    params = create_states(config, jax.random.key(0), 1).generator.params
    folder = tmp_path_factory.mktemp("models") / "tinyface"
    folder.mkdir()
    blob = serialization.to_bytes(jax.device_get(params))
    (folder / "params.msgpack").write_bytes(blob)
    save_config(config, folder / "config.toml")
    card = {"name": "tinyface", "step": 0, "sha256": pretrained.digests(folder)}
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def _frames(folder):
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def _faces(path):
    image = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    return detect_faces(image)


def test_faces_move_in_place_at_the_photos_size_and_in_colour(face_model, photo_dir, tmp_path):
    photo = photo_dir / "two_people.png"
    lines = []
    opts = RenderOptions(model=str(face_model), inputs=(str(photo),), out=str(tmp_path / "a.gif"),
                         frames_dir=str(tmp_path / "frames"), t_steps=3,
                         save_field=str(tmp_path / "u.npy"))
    assert render(opts, lines.append) == [tmp_path / "a.gif"]
    assert any("2 faces" in line for line in lines), lines
    given = np.asarray(Image.open(photo))
    frames = _frames(tmp_path / "frames")
    assert len(frames) == 3 and all(f.shape == given.shape for f in frames)  # size, RGB
    np.testing.assert_array_equal(frames[0], given)  # frame 0 is the photo
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.size == (given.shape[1], given.shape[0]) and gif.n_frames == 3
    far = far_mask(given.shape[:2], _faces(photo))
    assert far.mean() > 0.2  # the test means something: much of the photo is far
    for frame in frames:
        np.testing.assert_array_equal(frame[far], given[far])
    moved = np.any(frames[-1] != given, axis=-1)
    assert moved.sum() > 100 and not moved[far].any()
    u = np.load(tmp_path / "u.npy")
    assert u.shape == (*given.shape[:2], 2) and np.all(u[far] == 0)
    assert np.abs(u).max() > 0.5  # the faces moved (in photo pixels)


def test_transparency_survives_and_max_size_shrinks(face_model, photo_dir, tmp_path):
    photo = photo_dir / "alex-lacamoire.png"
    given = np.asarray(Image.open(photo))
    assert given.shape[-1] == 4 and given[..., 3].min() < 255  # a photo with transparency
    opts = RenderOptions(model=str(face_model), inputs=(str(photo),),
                         out=str(tmp_path / "a.webp"), frames_dir=str(tmp_path / "f"),
                         t_steps=2, max_size=150)
    render(opts, lambda _: None)
    frames = _frames(tmp_path / "f")
    assert frames[0].shape[-1] == 4 and max(frames[0].shape[:2]) == 150
    with Image.open(tmp_path / "a.webp") as webp:
        assert max(webp.size) == 150 and webp.mode == "RGBA"


def test_photos_without_a_face_are_named_and_the_others_still_animated(
    face_model, photo_dir, tmp_path, capsys
):
    from jwarp.commands.animate import main

    argv = ["--model", str(face_model), "--input", str(photo_dir / "no_face.png"),
            str(photo_dir / "obama-480p.png"), "--t-steps", "2", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_face.png: no human face found" in err[0], err
    assert (tmp_path / "obama-480p.gif").is_file() and not (tmp_path / "no_face.gif").exists()
    # Alone, it is the same one line, and nothing is written.
    assert main([*argv[:4], "--t-steps", "2", "--out", str(tmp_path / "x.gif")]) == 2
    assert "no human face" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_whole_image_keeps_the_models_own_input(face_model, photo_dir, tmp_path):
    opts = RenderOptions(model=str(face_model), inputs=(str(photo_dir / "no_face.png"),),
                         out=str(tmp_path / "a.gif"), t_steps=2, find_faces=False)
    render(opts, lambda _: None)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.size == (32, 32)


def test_fit_aligns_two_photos_of_one_person_and_morphs_in_place(photo_dir, tmp_path):
    """Two photos of one man at different sizes: the faces are aligned by their landmarks,
    and the morph ends on the second photo's face in the first photo's place."""
    source, target = photo_dir / "obama-480p.png", photo_dir / "obama-1080p.png"
    lines = []
    opts = RenderOptions(inputs=(str(source),), targets=(str(target),), fit=True, t_steps=3,
                         out=str(tmp_path / "m.gif"), frames_dir=str(tmp_path / "f"))
    render(opts, lines.append)
    assert any("aligned by their landmarks" in line for line in lines), lines
    given = np.asarray(Image.open(source).convert("RGB"))
    frames = _frames(tmp_path / "f")
    assert frames[0].shape == given.shape
    np.testing.assert_array_equal(frames[0], given)
    far = far_mask(given.shape[:2], _faces(source))
    np.testing.assert_array_equal(frames[-1][far], given[far])
    # The last frame's face is the target's: found where the source's was, at its size.
    (end,) = detect_faces(frames[-1].astype(np.float32) / 255)
    (start,) = _faces(source)
    assert np.abs(end.landmarks - start.landmarks).max() < 0.15 * start.eye_distance
    # Without a face in one of them, the whole images are fitted, as before.
    whole = RenderOptions(inputs=(str(photo_dir / "no_face.png"),), targets=(str(source),),
                          fit=True, t_steps=2, out=str(tmp_path / "w.gif"))
    lines.clear()
    render(whole, lines.append)
    assert any("fitting the whole images" in line for line in lines), lines
    with pytest.raises(AnimationError, match="no_face.png: no human face"):
        render(RenderOptions(**{**whole.__dict__, "find_faces": True}), lambda _: None)


def test_evaluate_photos_reports_faces_judgements_and_what_changed_far_away(
    face_model, photo_dir, mini_smiles, tmp_path, capsys
):
    from jwarp.commands.evaluate import main

    folder = tmp_path / "set"
    (folder / "people").mkdir(parents=True)
    (folder / "people" / "two.png").write_bytes((photo_dir / "two_people.png").read_bytes())
    (folder / "none.png").write_bytes((photo_dir / "no_face.png").read_bytes())
    out = tmp_path / "photos.json"
    assert main(["--photos", str(folder), "--model", str(face_model), "--smiles-dir",
                 str(mini_smiles), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = {row["photo"].rsplit("/", 1)[-1]: row for row in result["photos"]}
    assert rows["none.png"]["faces"] == 0 and rows["two.png"]["faces"] == 2
    two = rows["two.png"]
    assert two["changed_far"] == 0 and two["max_change_far"] <= 2
    assert two["min_det"] > 0 and 0 <= two["judged_after"] <= 2 and two["seconds"] > 0
    totals = result["totals"]
    assert totals["photos"] == 2 and totals["photos_with_faces"] == 1 and totals["faces"] == 2
    assert result["kinds"]["people"]["faces"] == 2 and "judge" in result
    assert "| all |" in printed and "| people |" in printed


def test_boomerang_returns_and_backward_starts_from_the_end(face_model, photo_dir, tmp_path):
    photo = str(photo_dir / "obama-480p.png")
    frames = {}
    for direction in ("forward", "boomerang", "backward"):
        opts = RenderOptions(model=str(face_model), inputs=(photo,), t_steps=3,
                             direction=direction, out=str(tmp_path / f"{direction}.gif"),
                             frames_dir=str(tmp_path / direction))
        render(opts, lambda _: None)
        frames[direction] = _frames(tmp_path / direction)
    forward, boomerang, backward = frames["forward"], frames["boomerang"], frames["backward"]
    assert len(boomerang) == 5 and not np.array_equal(forward[0], forward[-1])
    for a, b in zip(boomerang, forward + forward[-2::-1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(backward[0], forward[-1])  # the end frame, carried back
    assert np.abs(backward[-1].astype(int) - forward[0]).mean() < 1.0  # ... to the start
