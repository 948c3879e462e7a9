"""The shipped models: intact, and still doing on unseen real images what their cards say."""

import jax.numpy as jnp
import numpy as np
import pytest

from jwarp import data, judges, metrics, pretrained


def test_the_shipped_models_load_and_document_how_they_were_made():
    assert {"smiles", "mnist", "fei"} <= set(pretrained.names())
    for name in ("smiles", "mnist", "fei"):
        card = pretrained.card(name)
        assert any("train.py" in c or "make real" in c for c in card["commands"]), card
        assert card["evaluation"]["metrics"]["judged_target_pct"]["model"] > 0
        animator = pretrained.load(name)  # checks the digest and the shapes
        assert animator.config.data.name == name


def test_shipped_models_hold_no_path_of_the_machine_that_trained_them():
    for name in pretrained.names():
        data = pretrained.load(name).config.data
        for folder in (data.data_dir, data.fei_dir):  # a data set's name, its layout
            assert "/" not in str(folder) and "\\" not in str(folder), (name, folder)


def _first_frames(animator, x0):
    anim = animator.animate(jnp.asarray(x0), np.linspace(0, 1, 11, dtype=np.float32))
    return np.asarray(anim.frames[-1]), metrics.jacobian_measures(anim.disp)


def test_shipped_mnist_model_turns_unseen_real_threes_into_fours(real_mnist):
    threes, _ = data.load_mnist(real_mnist, "test")
    x1_hat, jac = _first_frames(pretrained.load("mnist"), threes[:64])
    judge = judges.digit_judge(32, str(real_mnist))
    assert np.mean(judge.predict(threes[:64]) == 4) < 0.05
    assert np.mean(judge.predict(x1_hat) == 4) >= 0.8
    assert np.mean(metrics.stroke_count(x1_hat) == 1) >= 0.8
    assert float(jnp.mean(jac["min_det"] <= 0)) <= 0.05


def _smiling_before_and_after(checkout, n=None):
    """Shares of the first ``n`` neutral test faces of ``checkout`` that its judge calls
    smiling, unwarped and at t = 1 of the shipped model, and the warp's Jacobian measures.
    The faces are aligned to the model's canonical crop, as animate.py aligns a photo's, and
    judged by the judge of faces aligned so."""
    smiles = pretrained.load("smiles")
    crop = smiles.config.data.canonical_crop
    neutral = data.load_smiles(checkout, "test", crop=crop)[0][:n]
    x1_hat, jac = _first_frames(smiles, neutral)
    judge = judges.smile_judge(str(checkout), aligned=crop is not None)
    return np.mean(judge.predict(neutral)), np.mean(judge.predict(x1_hat)), jac


def test_shipped_smiles_model_makes_unseen_real_faces_smile_to_a_small_judge(mini_smiles):
    # The small checkout's test faces are real test faces (the split is by file name), and its
    # judge (400 faces a class) is already fitted for the other tests.
    before, after, jac = _smiling_before_and_after(mini_smiles)
    assert after >= 0.4 and after >= 3 * before, (before, after)
    assert float(jnp.min(jac["min_det"])) > 0  # no fold in any face


@pytest.mark.slow  # fits the smile judge on every real training face (~20 s)
def test_shipped_smiles_model_makes_unseen_real_faces_smile(real_smiles):
    before, after, jac = _smiling_before_and_after(real_smiles, 128)
    assert after >= 0.5 and after >= 3 * before, (before, after)
    assert float(jnp.min(jac["min_det"])) > 0  # no fold in any face


def test_shipped_fei_model_brings_unseen_people_closer_to_their_own_smile():
    from conftest import SHARED_DATA

    fei_dir = SHARED_DATA / "FEI"
    if not fei_dir.is_dir():
        pytest.skip(f"real data {fei_dir} not found (set JWARP_SHARED_DATA)")
    fei = pretrained.load("fei")
    neutral, smiling = data.load_fei(fei_dir, "test", 64, 1, fei.config.data.canonical_crop)
    x1_hat, jac = _first_frames(fei, neutral)
    gain = np.mean(np.asarray(metrics.psnr(jnp.asarray(x1_hat), jnp.asarray(smiling)))
                   - np.asarray(metrics.psnr(jnp.asarray(neutral), jnp.asarray(smiling))))
    assert gain >= 1.5, gain  # dB closer to the person's real smile than no motion
    assert float(jnp.min(jac["min_det"])) > 0  # no face folds
