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
    check_fold,
    classification_metrics,
    confusion_matrix,
    paired_fold_test,
    stratified_folds,
    summarise_folds,
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


def test_summarise_folds_mean_and_sample_sd():
    summary = summarise_folds([{"auc": 0.8}, {"auc": 0.9}, {"auc": 1.0}])
    assert summary["auc"][0] == pytest.approx(0.9)
    assert summary["auc"][1] == pytest.approx(0.1)


def test_positive_classes_are_the_disease_labels_of_the_registry():
    from medmnist import INFO

    from course_utils.metrics.classification import POSITIVE_CLASS

    assert INFO["breastmnist"]["label"][str(POSITIVE_CLASS["breastmnist"])] == "malignant"
    assert INFO["pneumoniamnist"]["label"][str(POSITIVE_CLASS["pneumoniamnist"])] == "pneumonia"
