"""Judges: fitted on the real training split only, accurate on the real test split."""

import numpy as np

from jwarp import data, judges


def test_smile_judge_fits_the_training_faces_only_and_tells_smiles_apart(mini_smiles):
    judge = judges.smile_judge(str(mini_smiles))  # cached: evaluate_test uses it too
    neutral, smiling = data.load_smiles(mini_smiles, "train")
    # The fit saw every training face and nothing else (no test face, no model output).
    assert judge._model[0].n_samples_seen_ == len(neutral) + len(smiling)
    # 400 faces a class already give a useful judge (the full training split: 89 %).
    assert judge.accuracy >= 0.75, judge.accuracy
    assert judge.smiling_rate_smiling >= 0.7 > 0.3 >= judge.smiling_rate_neutral
    t_neutral, t_smiling = data.load_smiles(mini_smiles, "test")
    pooled = np.r_[judge.predict(t_neutral) == 0, judge.predict(t_smiling) == 1]
    assert judge.accuracy == np.mean(pooled)
    # Other sizes and channel counts are judged as the same grey 64x64 face.
    rgb = np.repeat(t_smiling, 3, axis=-1)
    rgba = np.concatenate([rgb, np.ones_like(t_smiling)], axis=-1)
    np.testing.assert_array_equal(judge.predict(rgb), judge.predict(t_smiling))
    np.testing.assert_array_equal(judge.predict(rgba), judge.predict(t_smiling))
    small, _ = data.load_smiles(mini_smiles, "test", size=48)
    assert np.mean(judge.predict(small) == 0) >= 0.6


def test_digit_judge_on_real_mnist_is_fitted_on_the_training_split(real_mnist):
    judge = judges.digit_judge(32, str(real_mnist))
    x_train, _ = data.mnist_labelled(real_mnist, "train")
    assert judge._svc.shape_fit_[0] == len(x_train)
    assert judge.accuracy >= 0.95, judge.accuracy
    threes, fours = data.load_mnist(real_mnist, "test")
    assert np.mean(judge.predict(fours) == 4) >= 0.9
    assert np.mean(judge.predict(threes) == 4) <= 0.05


def test_digit_judge_on_bundled_digits_never_sees_the_test_digits():
    x_train, _ = data.digits_labelled("train")
    threes_test, fours_test = data.digits("test")
    # The evaluation's 3s and 4s are test images, absent from the classifier's training set.
    flat = {im.tobytes() for im in x_train}
    assert not any(im.tobytes() in flat for im in np.concatenate([threes_test, fours_test]))
    judge = judges.digit_judge(32)
    assert judge.accuracy >= 0.95, judge.accuracy
    assert np.mean(judge.predict(fours_test) == 4) >= 0.9
    assert np.mean(judge.predict(threes_test) == 4) <= 0.05
