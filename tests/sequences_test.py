"""Paths against real video (``jwarp.faces.sequences``, ``jwarp-evaluate --sequences``)."""

import json
import math

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from jwarp.commands.evaluate import main as evaluate_main
from jwarp.faces import sequences


def _psnr(a, b):
    return 10 * math.log10(1 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def test_best_along_is_the_best_frame_of_the_path_for_each_real_frame():
    rng = np.random.default_rng(0)
    path = rng.random((5, 8, 8, 1))
    real = np.stack([path[3] + 0.01, path[1] * 0.9])
    psnr, at = sequences.best_along(path, real)
    for k in range(2):
        want = [_psnr(p, real[k]) for p in path]
        assert at[k] == int(np.argmax(want))
        np.testing.assert_allclose(psnr[k], max(want), rtol=1e-9)
    assert list(at) == [3, 1]


def test_a_path_through_the_real_frames_meets_them_in_order():
    # Real in-between frames that are the cross-dissolve at t = 0.25, 0.5, 0.75: the
    # cross-dissolve meets each exactly and in order; the nearer end frame cannot.
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 16, 16, 1))
    frames = np.stack([(1 - t) * a + t * b for t in (0.0, 0.25, 0.5, 0.75, 1.0)])
    t = sequences.TIMES.reshape(-1, 1, 1, 1)
    paths = {"cross_dissolve": (1 - t) * a + t * b, "nearer_end": np.where(t < 0.5, a, b),
             "backwards": t * a + (1 - t) * b}
    rows = sequences.score_paths(paths, frames)
    assert rows["cross_dissolve"]["best_t"] == [0.25, 0.5, 0.75]
    assert rows["cross_dissolve"]["rank_corr"] == pytest.approx(1.0)
    assert rows["cross_dissolve"]["best_psnr"] > 100  # exact frames
    assert rows["backwards"]["rank_corr"] == pytest.approx(-1.0)
    assert rows["nearer_end"]["best_psnr"] < rows["cross_dissolve"]["best_psnr"]
    assert sequences.rank_corr(np.arange(3), np.zeros(3)) == 0.0  # constant: no order


def test_sequence_folders_are_the_folders_with_three_frames_or_more(tmp_path):
    frame = Image.new("L", (8, 8))
    for folder, n in (("S1/001", 3), ("S1/002", 2), ("S2/001", 5)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(n):
            frame.save(tmp_path / folder / f"f_{i:03d}.png")
    found = sequences.sequence_folders(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["S1/001", "S2/001"]
    with pytest.raises(ValueError, match="no folder with 3 or more images"):
        sequences.sequence_folders(tmp_path / "S1" / "002")


def test_sequences_command_scores_every_path_on_a_real_sequence(tmp_path, capsys):
    ck = SHARED_DATA / "CK+" / "cohn-kanade-images" / "S132" / "005"
    if not ck.is_dir():
        pytest.skip(f"real data {ck} not found (set JWARP_SHARED_DATA)")
    files = sorted(ck.glob("*.jpg"))
    seq = tmp_path / "seqs" / "S132_005"
    seq.mkdir(parents=True)
    for f in files[:: max(1, len(files) // 5)][:5]:  # five frames, neutral first
        (seq / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "s.json"
    assert evaluate_main(["--sequences", str(tmp_path / "seqs"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    totals = result["totals"]
    assert set(totals) == {"cross_dissolve", "nearer_end", "fit", "fit_warp"}
    row = result["sequences"][0]
    assert row["sequence"] == "S132_005" and row["frames"] == 5
    # A face that changes smoothly: the blends pass its frames in order, and closer than
    # jumping from one end to the other.
    assert totals["cross_dissolve"]["rank_corr"] > 0.9
    assert totals["fit"]["best_psnr"] > totals["nearer_end"]["best_psnr"]
    assert "| fit |" in capsys.readouterr().out
    # No face in a sequence's first frame: the others are still measured and written, then
    # one line naming it, exit 2.
    bad = tmp_path / "seqs" / "blank"
    bad.mkdir(parents=True)
    for i in range(3):
        Image.new("L", (64, 64), 128).save(bad / f"{i}.png")
    out.unlink()
    assert evaluate_main(["--sequences", str(tmp_path / "seqs"), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no face found" in err and "blank" in err and len(err.strip().splitlines()) == 1
    assert [r["sequence"] for r in json.loads(out.read_text())["sequences"]] == ["S132_005"]
