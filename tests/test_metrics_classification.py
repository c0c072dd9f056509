"""Cross-validation folds, classification metrics and paired tests, checked against scikit-learn and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score, recall_score, roc_auc_score

from course_utils.metrics.classification import (
    Fold,
    LeakageError,
    binary_auc,
    bootstrap_metric,
    check_fold,
    classification_metrics,
    confusion_matrix,
    operating_point,
    paired_fold_test,
    percentile_interval,
    repeated_stratified_folds,
    stratified_folds,
    summarise_folds,
    threshold_for_sensitivity,
)


def _imbalanced_labels(n: int = 203, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < 0.27).astype(np.int64)  # about 27 % class 1, like BreastMNIST's malignant share


def test_folds_are_disjoint_cover_everything_and_are_stratified():
    labels = _imbalanced_labels()
    folds = stratified_folds(labels, k=5, seed=3)
    assert len(folds) == 5
    held_out = np.concatenate([f.test_indices for f in folds])
    assert np.array_equal(np.sort(held_out), np.arange(len(labels)))  # every sample held out exactly once
    share = labels.mean()
    for fold in folds:
        assert np.intersect1d(fold.train_indices, fold.test_indices).size == 0
        assert np.array_equal(np.union1d(fold.train_indices, fold.test_indices), np.arange(len(labels)))
        counts = np.bincount(labels[fold.test_indices], minlength=2)
        expected = np.bincount(labels, minlength=2) / 5
        assert np.all(np.abs(counts - expected) <= 1)  # stratified: class counts within one of the exact share
        assert abs(labels[fold.train_indices].mean() - share) < 0.01


def test_folds_depend_on_the_seed_and_repeat_with_it():
    labels = _imbalanced_labels()
    a, b, c = (stratified_folds(labels, 5, seed) for seed in (0, 0, 1))
    assert all(np.array_equal(x.test_indices, y.test_indices) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.test_indices, y.test_indices) for x, y in zip(a, c, strict=True))


def test_folds_reject_bad_input():
    with pytest.raises(ValueError, match="smallest class has 2 samples"):
        stratified_folds(np.array([0] * 10 + [1] * 2), k=5)
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        stratified_folds(_imbalanced_labels(), k=1)
    with pytest.raises(ValueError, match="integer class indices"):
        stratified_folds(np.array([0.5, 1.0, 0.0]), k=2)
    with pytest.raises(ValueError, match="at least two classes"):
        stratified_folds(np.zeros(10, dtype=int), k=2)


def test_check_fold_catches_overlap():
    check_fold(Fold(0, np.array([0, 1, 2]), np.array([3, 4])), num_samples=5)
    with pytest.raises(LeakageError, match="held-out indices are also training indices"):
        check_fold(Fold(0, np.array([0, 1, 2, 3]), np.array([3, 4])))
    with pytest.raises(ValueError, match="outside the 5 samples"):
        check_fold(Fold(0, np.array([0, 1, 7]), np.array([3, 4])), num_samples=5)


def _random_predictions(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]  # informative but imperfect
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positive", [0, 1])
def test_binary_metrics_agree_with_scikit_learn(seed, positive):
    labels, probabilities = _random_predictions(157, 2, seed)
    probabilities[:10] = np.round(probabilities[:10], 1)  # some ties for the AUC
    ours = classification_metrics(labels, probabilities, positive_class=positive)
    predicted = probabilities.argmax(axis=1)
    tn, fp, fn, tp = sk_confusion_matrix(labels == positive, predicted == positive).ravel()
    assert ours["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert ours["auc"] == pytest.approx(roc_auc_score(labels == positive, probabilities[:, positive]))
    assert ours["sensitivity"] == pytest.approx(recall_score(labels, predicted, pos_label=positive))
    assert ours["specificity"] == pytest.approx(tn / (tn + fp))
    assert ours["f1"] == pytest.approx(f1_score(labels, predicted, pos_label=positive))


def test_multiclass_metrics_are_macro_one_vs_rest():
    labels, probabilities = _random_predictions(240, 3, 5)
    ours = classification_metrics(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    matrix = sk_confusion_matrix(labels, predicted)
    specificities = [(matrix.sum() - matrix[c].sum() - matrix[:, c].sum() + matrix[c, c]) / (matrix.sum() - matrix[c].sum())
                     for c in range(3)]
    assert ours["auc"] == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    assert ours["sensitivity"] == pytest.approx(recall_score(labels, predicted, average="macro"))
    assert ours["f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert ours["specificity"] == pytest.approx(np.mean(specificities))
    assert np.array_equal(confusion_matrix(labels, predicted, 3), matrix)


def test_auc_extremes_and_missing_class():
    assert binary_auc(np.array([1, 1, 0, 0], bool), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert binary_auc(np.array([1, 1, 0, 0], bool), np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert binary_auc(np.array([1, 0], bool), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(binary_auc(np.array([1, 1], bool), np.array([0.3, 0.5])))


def test_metrics_reject_bad_input():
    labels, probabilities = _random_predictions(20, 2, 0)
    with pytest.raises(ValueError, match="name the positive class"):
        classification_metrics(labels, probabilities)
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        classification_metrics(labels, probabilities[:5], positive_class=1)
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(labels, np.full_like(probabilities, np.nan), positive_class=1)
    with pytest.raises(ValueError, match="class indices below K = 2"):
        classification_metrics(labels + 2, probabilities, positive_class=1)


def test_paired_test_matches_scipy_and_the_correction_is_more_cautious():
    a = np.array([0.81, 0.84, 0.79, 0.86, 0.83])
    b = np.array([0.78, 0.80, 0.79, 0.82, 0.80])
    result = paired_fold_test(a, b, test_fraction=0.2)
    assert result["mean_difference"] == pytest.approx(np.mean(a - b))
    assert result["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert result["t_p_corrected"] > result["t_p"]  # the corrected variance (1/k + 1/4) s^2 > s^2 / k
    d = a - b
    t = d.mean() / math.sqrt((1 / 5 + 0.25) * d.var(ddof=1))
    assert result["t_p_corrected"] == pytest.approx(2 * stats.t.sf(abs(t), 4))
    with pytest.raises(ValueError, match="equal-length"):
        paired_fold_test(a, b[:3])
    with pytest.raises(ValueError, match="test_fraction"):
        paired_fold_test(a, b, test_fraction=1.5)


def test_corrected_interval_matches_scipy_and_the_detectable_difference_a_known_answer():
    a = np.array([0.81, 0.84, 0.79, 0.86, 0.83, 0.80, 0.85, 0.82, 0.78, 0.84])
    b = np.array([0.78, 0.80, 0.79, 0.82, 0.80, 0.81, 0.80, 0.79, 0.77, 0.80])
    d = a - b
    for folds, fraction in ((5, 0.2), (10, 0.2)):  # 5-fold; 2 x 5-fold repeated (n = 10 differences, df = 9)
        result = paired_fold_test(a[:folds], b[:folds], test_fraction=fraction)
        se = math.sqrt(1 / folds + 0.25) * d[:folds].std(ddof=1)
        low, high = stats.t.interval(0.95, df=folds - 1, loc=d[:folds].mean(), scale=se)  # independent route
        assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
        assert result["se_corrected"] == pytest.approx(se)
        # power 0.8 at the MDD: a shifted t (the normal approximation of the power of a t-test) puts 80 % above
        # the critical value, i.e. P(T + mdd/se > t_crit) = 0.8 with T ~ t(df)
        t_crit = stats.t.ppf(0.975, folds - 1)
        assert stats.t.sf(t_crit - result["mdd"] / se, folds - 1) == pytest.approx(0.8)
    # the CI excludes 0 exactly when the corrected p < 0.05
    result = paired_fold_test(a, b, test_fraction=0.2)
    assert (result["ci_low"] > 0) == (result["t_p_corrected"] < 0.05)
    # a known answer: differences [1, -1, 1, -1, 0], s_d = 1, k = 5, n_test/n_train = 1/4
    known = paired_fold_test([1, -1, 1, -1, 0], [0, 0, 0, 0, 0], test_fraction=0.2)
    assert known["se_corrected"] == pytest.approx(math.sqrt(0.45))
    assert known["mdd"] == pytest.approx((2.7764451 + 0.9409646) * math.sqrt(0.45), rel=1e-6)
    constant = paired_fold_test([3.0, 2.0, 1.0], [2.5, 1.5, 0.5], test_fraction=0.2)  # sd 0: a zero-width interval
    assert constant["ci_low"] == 0.5 and constant["ci_high"] == 0.5
    assert constant["mdd"] == 0


def test_repeated_folds_cover_everything_once_per_repetition():
    labels = _imbalanced_labels(60)
    folds = repeated_stratified_folds(labels, k=3, repeats=2, seed=4)
    assert [f.index for f in folds] == list(range(6))
    for j in range(2):
        held = np.sort(np.concatenate([f.test_indices for f in folds[3 * j:3 * j + 3]]))
        assert np.array_equal(held, np.arange(60))
        same = stratified_folds(labels, k=3, seed=4 + j)
        pairs = zip(folds[3 * j:3 * j + 3], same, strict=True)
        assert all(np.array_equal(f.test_indices, g.test_indices) for f, g in pairs)
    assert not np.array_equal(folds[0].test_indices, folds[3].test_indices)
    with pytest.raises(ValueError, match="repeats"):
        repeated_stratified_folds(labels, k=3, repeats=0)


def test_bootstrap_matches_a_hand_written_bootstrap_with_scikit_learn():
    rng = np.random.default_rng(3)
    labels = _imbalanced_labels(80, seed=3)
    models = []
    for _ in range(3):
        p1 = np.clip(0.3 * labels + rng.random(80) * 0.7, 0, 1)  # (80,) informative but noisy
        models.append(np.stack([1 - p1, p1], axis=1))  # (80, 2)
    values = bootstrap_metric(labels, models, metric="auc", positive_class=1, resamples=300, seed=7)
    index = np.random.default_rng(7).integers(0, 80, size=(300, 80))
    expected = [np.mean([roc_auc_score(labels[rows], m[rows, 1]) for m in models]) for rows in index]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    low, high = percentile_interval(values)
    assert (low, high) == pytest.approx(tuple(np.percentile(expected, [2.5, 97.5])))
    assert low < np.mean([roc_auc_score(labels, m[:, 1]) for m in models]) < high
    # the same seed draws the same resamples: a paired difference of two methods
    other = bootstrap_metric(labels, models[:1], metric="auc", positive_class=1, resamples=300, seed=7)
    np.testing.assert_allclose(other, [roc_auc_score(labels[rows], models[0][rows, 1]) for rows in index])
    with pytest.raises(ValueError, match="metric"):
        bootstrap_metric(labels, models, metric="kappa", positive_class=1)
    tiny = bootstrap_metric(np.array([0, 1]), [np.eye(2)], positive_class=1, resamples=50)
    assert np.isnan(tiny).any() and np.isfinite(tiny).any()  # resamples without one class are NaN, not an error


def test_threshold_at_a_fixed_sensitivity_and_its_operating_point():
    labels = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.65, 0.35, 0.25, 0.1, 0.05])
    threshold = threshold_for_sensitivity(labels, scores, positive_class=1, target=0.9)
    assert threshold == 0.3  # 9 of 10 positives score >= 0.3; 0.2 would also reach 90 % but is lower
    point = operating_point(labels, scores, 1, threshold)
    assert point["sensitivity"] == pytest.approx(recall_score(labels, scores >= threshold))
    assert point["specificity"] == pytest.approx(recall_score(labels, scores >= threshold, pos_label=0))
    assert point == pytest.approx({"sensitivity": 0.9, "specificity": 0.6})
    assert threshold_for_sensitivity(labels, scores, 1, target=1.0) == 0.2
    assert threshold_for_sensitivity(1 - labels, 1 - scores, 0, target=0.8) == pytest.approx(0.15)  # class 0 positive
    with pytest.raises(ValueError, match="no sample of the positive class"):
        threshold_for_sensitivity(np.zeros(5, dtype=int), scores[:5], 1)


def test_summarise_folds_mean_and_sample_sd():
    summary = summarise_folds([{"auc": 0.8}, {"auc": 0.9}, {"auc": 1.0}])
    assert summary["auc"][0] == pytest.approx(0.9)
    assert summary["auc"][1] == pytest.approx(0.1)


def test_positive_classes_are_the_disease_labels_of_the_registry():
    from medmnist import INFO

    from course_utils.metrics.classification import POSITIVE_CLASS

    assert INFO["breastmnist"]["label"][str(POSITIVE_CLASS["breastmnist"])] == "malignant"
    assert INFO["pneumoniamnist"]["label"][str(POSITIVE_CLASS["pneumoniamnist"])] == "pneumonia"
