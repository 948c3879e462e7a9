"""``python -m jwarp.evaluate`` on tiny runs: the baselines against hand-computed values."""

import ast
import json
import math
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.metrics import structural_similarity

from jwarp import evaluate, judges
from jwarp.checkpoint import Checkpoints
from jwarp.commands.evaluate import main as evaluate_main
from jwarp.config import load_config, save_config
from jwarp.data import digits, faces_at, load_dataset
from jwarp.optim import create_states


def _write_run(workdir, config):
    """A run folder holding the untrained networks of ``config`` as checkpoint 0."""
    save_config(config, workdir / "config.toml")
    states = create_states(config, jax.random.key(0), 1)
    checkpoints = Checkpoints(workdir / "checkpoints")
    checkpoints.save(0, {"generator": states.generator, "critic": states.critic},
                     {"step": 0, "data": {}, "seed": 0})
    checkpoints.close()
    return workdir


def _psnr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.mean([10 * math.log10(1 / np.mean((x - y) ** 2)) for x, y in zip(a, b)])


@pytest.fixture(scope="module")
def faces_run(tmp_path_factory):
    return _write_run(tmp_path_factory.mktemp("faces_run"), load_config("smoke"))


def test_faces_table_baselines_match_hand_computed_values(faces_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate_main(["--workdir", str(faces_run), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    config = load_config(str(faces_run / "config.toml"))
    x0, x1, _ = load_dataset(config.data, "test", config.train.seed)
    assert result["n_images"] == len(x0) == 4
    m = result["metrics"]

    np.testing.assert_allclose(m["endpoint_psnr"]["identity"], _psnr(x0, x1), rtol=1e-4)
    assert m["endpoint_psnr"]["cross_dissolve"] is None  # exact: it is given x1
    want_ssim = np.mean([structural_similarity(a, b, data_range=1.0, channel_axis=-1,
                                               gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False)
                         for a, b in zip(x0, x1)])
    np.testing.assert_allclose(m["endpoint_ssim"]["identity"], want_ssim, atol=1e-4)
    moving = ndimage.maximum_filter(np.abs(x1 - x0).max(-1) > 1 / 255, size=(1, 5, 5))
    sq = ((x0 - x1).astype(np.float64) ** 2).sum(-1)
    want_moving = np.mean([10 * math.log10(1 / (s[k].sum() / (k.sum() * 4)))
                           for s, k in zip(sq, moving)])
    np.testing.assert_allclose(m["endpoint_psnr_moving"]["identity"], want_moving, rtol=1e-4)

    true = faces_at(4, evaluate.SMILES, 16, 4, "test", config.train.seed)
    for level, truth in zip(evaluate.SMILES, true):
        np.testing.assert_allclose(m[f"psnr@{level:g}"]["identity"], _psnr(x0, truth), rtol=1e-4)
        dissolve = (1 - level) * x0 + level * x1
        np.testing.assert_allclose(
            m[f"psnr@{level:g}"]["cross_dissolve"], _psnr(dissolve, truth), rtol=1e-4
        )
        best = np.mean([max(10 * math.log10(1 / np.mean(((1 - t) * a + t * b - c) ** 2))
                            for t in evaluate.TIMES) for a, b, c in zip(x0, x1, truth)])
        np.testing.assert_allclose(m[f"best_psnr@{level:g}"]["cross_dissolve"], best, rtol=1e-4)
    assert m["neg_jacobian_pct"]["identity"] == 0 and m["inverse_psnr"]["identity"] is None
    # The untrained field is nearly zero: the model is close to no motion, and diffeomorphic.
    assert abs(m["endpoint_psnr"]["model"] - m["endpoint_psnr"]["identity"]) < 1.0
    assert m["neg_jacobian_pct"]["model"] == 0.0
    # The printed table carries the same numbers.
    assert f"{m['endpoint_psnr']['identity']:.2f}" in printed and "exact" in printed
    # Deterministic.
    again = evaluate.evaluate_run(faces_run)
    assert again["metrics"] == result["metrics"]


@pytest.mark.slow  # ~15 s of compiles on 2 cores; the faces test above covers the CLI and tables
def test_digits_table_counts_the_classifier_and_strokes(tmp_path):
    config = load_config(
        "smoke",
        {"data.name": "digits", "data.image_size": 32, "data.channels": 1,
         "data.paired": False, "loss.mode": "gan"},
    )
    run = _write_run(tmp_path / "digits_run", config)
    result = evaluate.evaluate_run(run, n=8)
    threes, fours = digits("test")
    clf = judges.digit_judge(32)
    m = result["metrics"]
    assert result["n_images"] == 8 and result["judge"]["accuracy"] == clf.accuracy
    np.testing.assert_allclose(m["judged_target_pct"]["identity"],
                               100 * np.mean(clf.predict(threes[:8]) == 4))
    np.testing.assert_allclose(m["judged_target_pct"]["real_targets"],
                               100 * np.mean(clf.predict(fours) == 4))
    pieces = [ndimage.label(im[..., 0] > 0.5, np.ones((3, 3)))[1] for im in threes[:8]]
    np.testing.assert_allclose(m["single_stroke_pct"]["identity"],
                               100 * np.mean(np.array(pieces) == 1))
    assert "endpoint_psnr" not in m  # unpaired: no target frame to compare with


def test_smiles_table_has_the_judge_and_the_jacobian_measures(mini_smiles, tmp_path, capsys):
    config = load_config(
        "smoke",
        {"data.name": "smiles", "data.data_dir": str(mini_smiles), "data.channels": 1,
         "data.paired": False, "loss.mode": "gan"},
    )
    run = _write_run(tmp_path / "smiles_run", config)
    sheet = tmp_path / "sheet.png"
    argv = ["--workdir", str(run), "--n", "12", "--json", str(tmp_path / "e.json"),
            "--sheet", str(sheet)]
    assert evaluate_main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "e.json").read_text())
    neutral, smiling, _ = load_dataset(config.data, "test")
    judge = judges.smile_judge(str(mini_smiles))
    m = result["metrics"]
    assert result["judge"]["accuracy"] == judge.accuracy and "smile" in printed
    np.testing.assert_allclose(m["judged_target_pct"]["identity"],
                               100 * np.mean(judge.predict(neutral[:12]) == 1))
    np.testing.assert_allclose(m["judged_target_pct"]["real_targets"],
                               100 * np.mean(judge.predict(smiling) == 1))
    # The untrained field barely moves: every naturalness measure is at the identity's.
    assert m["images_folded_pct"]["model"] == 0 and m["extreme_jacobian_pct"]["model"] == 0
    assert 0.99 < m["min_det"]["model"] <= m["median_min_det"]["model"] < 1.01
    assert m["images_min_det_ge_0.1_pct"]["model"] == 100
    assert m["bending_energy"]["model"] < 1e-6
    # 16 rows of 5 frames, without and with the grid, each image at least 128 px.
    with Image.open(sheet) as im:
        assert im.size[1] == 16 * 128 and im.size[0] > 10 * 128


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert evaluate_main(["--workdir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "run folder" in err[0]
    assert evaluate_main([]) == 2
    assert "--workdir" in capsys.readouterr().err


def test_lower_half_scores_are_the_lower_rows_alone():
    rng = np.random.default_rng(0)
    x0 = rng.random((3, 32, 32, 1)).astype(np.float32)
    x1 = x0.copy()
    x1[:, 20:] = np.clip(x1[:, 20:] + rng.normal(0, 0.1, x1[:, 20:].shape), 0, 1)
    end = np.clip(x0 + rng.normal(0, 0.05, x0.shape), 0, 1).astype(np.float32)
    frames = np.stack([x0, end])
    row = evaluate.score_paths({"a": frames}, x0, x1, {}, lower=True)["a"]
    np.testing.assert_allclose(row["endpoint_psnr_lower"], _psnr(end[:, 16:], x1[:, 16:]),
                               rtol=1e-4)
    want = np.mean([structural_similarity(a[..., 0], b[..., 0], data_range=1.0,
                                          gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
                    for a, b in zip(end[:, 16:], x1[:, 16:])])
    np.testing.assert_allclose(row["endpoint_ssim_lower"], want, atol=1e-4)
    assert "endpoint_psnr_lower" not in evaluate.score_paths({"a": frames}, x0, x1, {})["a"]


def test_baselines_beside_the_model_are_measured_as_it_is(faces_run, capsys):
    from jwarp.animation import Animator

    result = evaluate.evaluate_run(faces_run, fit=True,
                                   other=("again", Animator.load(faces_run)))
    m = result["metrics"]
    # The same model as a baseline gets the model's numbers, measure by measure.
    for key, row in m.items():
        if "model" in row and key != "inverse_psnr":
            assert row["again"] == pytest.approx(row["model"], rel=1e-5, abs=1e-6), key
    # Pair fitting sees the target: its end frame is far closer than no motion, unfolded.
    assert m["endpoint_psnr"]["fit"] > m["endpoint_psnr"]["identity"] + 1.0
    assert m["images_folded_pct"]["fit"] == 0
    table = evaluate.format_table(result)
    assert "again" in table and "fit" in table.splitlines()[1]
    # A model that takes other images is refused in one line.
    assert evaluate_main(["--workdir", str(faces_run), "--compare-model", "mnist"]) == 2
    assert "--compare-model" not in capsys.readouterr().out
    assert evaluate_main(["--fit", "--compare-fit"]) == 2  # not silently ignored
    assert "--workdir alone" in capsys.readouterr().err


def test_a_model_that_is_not_finite_is_refused_and_nothing_written(
    faces_run, tmp_path, capsys, monkeypatch
):
    """Issue 32 #6: a model with NaN parameters was measured and written, exit 0."""
    from jwarp.animation import Animator

    load = Animator.load

    def nan_load(workdir, checkpoint=None):
        model = load(workdir, checkpoint)
        nan = jax.tree.map(lambda p: p * np.nan, model.params)
        return Animator(model.config, nan, step=model.step, workdir=model.workdir)

    monkeypatch.setattr(Animator, "load", staticmethod(nan_load))
    out = tmp_path / "e.json"
    assert evaluate_main(["--workdir", str(faces_run), "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"jwarp-evaluate: error: {faces_run} at step 0: the animation is not finite"), err
    assert not out.exists()


def test_evaluate_refuses_one_file_for_sheet_and_json_and_a_run_s_own_files(
    faces_run, tmp_path, capsys, monkeypatch
):
    """Issue 32 #2: --sheet same.png --json same.png wrote both into one file, exit 0."""
    monkeypatch.chdir(tmp_path)
    config = (faces_run / "config.toml").read_bytes()
    shipped = Path(evaluate.__file__).parent / "pretrained" / "smiles" / "model.json"
    card = shipped.read_bytes()
    run = ["--workdir", str(faces_run)]
    for argv, line in [
        ([*run, "--sheet", "same.png", "--json", "same.png"],
         "--sheet same.png: is also the output of --json same.png; give each output its own"),
        ([*run, "--json", f"{faces_run}/config.toml"],
         f"--json {faces_run}/config.toml: is the input --workdir {faces_run}/config.toml"),
        (["--model", "smiles", "--photos", str(tmp_path), "--json", str(shipped)],
         f"--json {shipped}: is the input --model {shipped}"),
    ]:
        assert evaluate_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"jwarp-evaluate: error: {line}"), err
    assert os.listdir(tmp_path) == [] and (faces_run / "config.toml").read_bytes() == config
    assert shipped.read_bytes() == card


def test_evaluate_refuses_an_output_that_is_a_file_of_the_runs_data(tmp_path, capsys, monkeypatch):
    """Issue 32 (held out): --sheet data/source/x.png replaced a training image of the run."""
    monkeypatch.chdir(tmp_path)
    for name in ("data/source/x.png", "data/target/x.png", "fei/1a.jpg", "pairs.npz",
                 "SMILEsmileD/SMILEs/list.txt"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(name.encode())
    for run, data in (("folder_run", 'name = "smiles"\ndata_dir = "data"\nfei_dir = "fei"'),
                      ("npy_run", 'name = "npy"\ndata_dir = "pairs.npz"')):
        Path(run).mkdir()
        Path(run, "config.toml").write_text(f"[data]\n{data}\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for argv, line in [
        (["--workdir", "folder_run", "--sheet", "data/source/x.png"],
         "--sheet data/source/x.png: is the input --workdir folder_run's data.data_dir "
         "data/source/x.png; it would be replaced"),
        (["--workdir", "folder_run", "--json", str(tmp_path / "fei" / "1a.jpg")],
         f"--json {tmp_path}/fei/1a.jpg: is the input --workdir folder_run's data.fei_dir "
         "fei/1a.jpg"),
        (["--workdir", "npy_run", "--json", "pairs.npz"],
         "--json pairs.npz: is the input --workdir npy_run's data.data_dir pairs.npz"),
        (["--workdir", "npy_run", "--smiles-dir", "SMILEsmileD", "--json",
          "SMILEsmileD/SMILEs/list.txt"],
         "--json SMILEsmileD/SMILEs/list.txt: is the input --smiles-dir "
         "SMILEsmileD/SMILEs/list.txt"),
    ]:
        assert evaluate_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"jwarp-evaluate: error: {line}"), err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def _imports_outside_main_guard(path: Path) -> set[str]:
    """The modules ``path`` imports, except in its ``if __name__ == "__main__":`` block (the
    script entry of ``python -m``, not an import of the module)."""
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_the_library_never_imports_the_commands():
    """Issue 32 #25: jwarp.evaluate and jwarp.commands.evaluate imported each other. The
    commands import the library; no library module imports a command, even lazily."""
    package = Path(evaluate.__file__).parent
    for path in package.rglob("*.py"):
        if "commands" in path.relative_to(package).parts:
            continue
        imported = _imports_outside_main_guard(path)
        assert not {m for m in imported if m.startswith("jwarp.commands")}, path
    assert "jwarp.evaluate" in _imports_outside_main_guard(package / "commands" / "evaluate.py")
