"""Cross-validation splits, classification metrics and paired tests across folds.

Introduced in notebook 04 (`04_conditional_gan_augmentation`), which asks whether GAN-made images help a
classifier trained on a small dataset.

- `stratified_folds`: k disjoint held-out parts that together cover every sample once, each with the class mix of
  the whole set (scikit-learn's `StratifiedKFold`), returned as `Fold(train_indices, test_indices)`.
- `classification_metrics`: accuracy, AUC, sensitivity (recall), specificity and F1, written out from the
  confusion matrix and the rank formula for AUC (checked against scikit-learn in the tests). For two classes the
  *positive* class must be named (in BreastMNIST it is label 0, "malignant"); with more classes every metric but
  accuracy is the unweighted (macro) mean of the one-vs-rest values.
- `repeated_stratified_folds`: r repetitions of k-fold cross-validation with different shuffles (r x k folds).
- `paired_fold_test`: does method A beat method B on the same folds? A paired t-test (scipy's `ttest_rel`), the
  Nadeau–Bengio corrected version (folds share most training data, so the plain test is over-confident) with its
  95 % confidence interval of the mean difference and the minimum detectable difference of the design, and the
  Wilcoxon signed-rank test (scipy's `wilcoxon`).
- `bootstrap_metric` / `percentile_interval`: a bootstrap over the images of a fixed test set (the official
  test split), paired across methods when they share the seed.
- `threshold_for_sensitivity` / `operating_point`: the threshold a clinician asks for (a fixed high sensitivity,
  chosen on validation data) and the specificity it buys on other data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

METRIC_NAMES: tuple[str, ...] = ("accuracy", "auc", "sensitivity", "specificity", "f1")
# the disease ("positive") class of the binary MedMNIST sets notebook 04 uses, from `medmnist.INFO[flag]['label']`
POSITIVE_CLASS: dict[str, int] = {"breastmnist": 0, "pneumoniamnist": 1}  # 0 = 'malignant'; 1 = 'pneumonia'


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: indices (into the pooled data) to train on and to hold out (notebook 04)."""

    index: int
    train_indices: np.ndarray  # (N_train,) int64, sorted
    test_indices: np.ndarray  # (N_test,) int64, sorted: never shown to anything trained in this fold


class LeakageError(ValueError):
    """A fold's held-out samples were about to be used for training."""


def _as_labels(labels: object, name: str = "labels") -> np.ndarray:
    """Integer class labels as an int64 NumPy vector `(N,)`."""
    array = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"{name} must be a vector (N,) of integer class indices; got shape {array.shape}, "
                         f"dtype {array.dtype}.")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} must be >= 0; got {array.min()}.")
    return array.astype(np.int64)


def stratified_folds(labels: object, k: int = 5, seed: int = 0) -> list[Fold]:
    """`k` stratified folds over samples with `labels` `(N,)`, shuffled with `seed` (scikit-learn's StratifiedKFold)."""
    from sklearn.model_selection import StratifiedKFold

    labels = _as_labels(labels)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2 (5 is usual); got {k!r}.")
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.size < 2:
        raise ValueError("stratified folds need at least two classes in the labels.")
    if present.min() < k:
        raise ValueError(
            f"the smallest class has {present.min()} samples, fewer than k={k} folds; every held-out part must "
            "contain every class. Lower k or pool more data."
        )
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(i, np.sort(train).astype(np.int64), np.sort(test).astype(np.int64))
            for i, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels))]


def repeated_stratified_folds(labels: object, k: int = 5, repeats: int = 1, seed: int = 0) -> list[Fold]:
    """`repeats` x `k` stratified folds: repetition j shuffles with `seed + j`; fold indices run 0 .. r*k - 1.

    Each repetition covers every sample once. Pass all r*k paired differences to `paired_fold_test`: its
    correction then uses 1/(r k) + n_test/n_train with r k - 1 degrees of freedom (Bouckaert & Frank, 2004).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1; got {repeats!r}.")
    folds = []
    for j in range(repeats):
        folds += [Fold(j * k + f.index, f.train_indices, f.test_indices) for f in stratified_folds(labels, k, seed + j)]
    return folds


def check_fold(fold: Fold, num_samples: int | None = None) -> None:
    """Raise `LeakageError` if the fold's training and held-out indices overlap (or fall outside the data)."""
    overlap = np.intersect1d(fold.train_indices, fold.test_indices)
    if overlap.size:
        raise LeakageError(
            f"fold {fold.index}: {overlap.size} held-out indices are also training indices (e.g. {overlap[:5].tolist()}); "
            "anything trained on them would be tested on images it has seen."
        )
    if num_samples is not None:
        for name, indices in (("training", fold.train_indices), ("held-out", fold.test_indices)):
            if indices.size and (indices.min() < 0 or indices.max() >= num_samples):
                raise ValueError(f"fold {fold.index}: {name} indices fall outside the {num_samples} samples.")


def confusion_matrix(labels: object, predicted: object, num_classes: int) -> np.ndarray:
    """Counts `(K, K)`: row = true class, column = predicted class (as scikit-learn's confusion_matrix)."""
    labels, predicted = _as_labels(labels), _as_labels(predicted, "predicted")
    if labels.shape != predicted.shape:
        raise ValueError(f"{labels.shape[0]} labels but {predicted.shape[0]} predictions.")
    return np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes).reshape(num_classes,
                                                                                                      num_classes)


def binary_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties counting 1/2.

    Computed from ranks (the Mann–Whitney U statistic); NaN when one of the two groups is empty.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos, n_neg = int(is_positive.sum()), int((~is_positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(scores)  # average ranks for ties
    u = ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2  # pairs (positive, negative) ranked the right way
    return float(u / (n_pos * n_neg))


def _safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or NaN when the denominator is 0."""
    return float(numerator / denominator) if denominator else math.nan


def classification_metrics(labels: object, probabilities: object, positive_class: int | None = None
                           ) -> dict[str, float]:
    """Accuracy, AUC, sensitivity, specificity, F1 of predicted `probabilities` `(N, K)` for true `labels` `(N,)`.

    Introduced in notebook 04. The prediction is the most probable class. Two classes: sensitivity (recall),
    specificity and F1 are those of `positive_class` (required), AUC ranks its probability. More classes: each is
    the macro mean over one-vs-rest problems (AUC as scikit-learn's `roc_auc_score(multi_class='ovr')`).
    """
    labels = _as_labels(labels)
    probabilities = np.asarray(probabilities.cpu() if hasattr(probabilities, "cpu") else probabilities, dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0] or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (N, K) with N = {labels.shape[0]} labels and K >= 2 classes; "
                         f"got {probabilities.shape}.")
    if not np.isfinite(probabilities).all():
        raise ValueError("probabilities contain NaN or infinite values.")
    num_classes = probabilities.shape[1]
    if labels.size == 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be non-empty class indices below K = {num_classes}.")
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, num_classes)  # (K, K)
    accuracy = float(np.trace(matrix) / matrix.sum())
    if num_classes == 2:
        if positive_class not in (0, 1):
            raise ValueError(
                f"with two classes, name the positive class (0 or 1) for sensitivity/specificity/F1; got "
                f"{positive_class!r}. In BreastMNIST the positive (disease) class is 0, 'malignant'."
            )
        classes = [positive_class]
    else:
        classes = list(range(num_classes))
    per_class = []
    for c in classes:
        tp = matrix[c, c]
        fn = matrix[c].sum() - tp
        fp = matrix[:, c].sum() - tp
        tn = matrix.sum() - tp - fn - fp
        precision = _safe_ratio(tp, tp + fp)
        sensitivity = _safe_ratio(tp, tp + fn)
        f1 = _safe_ratio(2 * tp, 2 * tp + fp + fn)  # = harmonic mean of precision and recall
        per_class.append({
            "auc": binary_auc(labels == c, probabilities[:, c]),
            "sensitivity": sensitivity, "specificity": _safe_ratio(tn, tn + fp), "f1": f1, "precision": precision,
        })
    summary = {"accuracy": accuracy}
    for name in ("auc", "sensitivity", "specificity", "f1"):
        summary[name] = float(np.mean([row[name] for row in per_class]))
    return summary


def mean_and_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for one value) of a list of numbers."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("need at least one value.")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else math.nan


def summarise_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """{metric: (mean, sd)} over the folds' metric dicts (every fold must have the same metrics)."""
    if not per_fold:
        raise ValueError("per_fold is empty; run at least one fold.")
    names = list(per_fold[0])
    return {name: mean_and_sd([fold[name] for fold in per_fold]) for name in names}


def paired_fold_test(a: Sequence[float], b: Sequence[float], test_fraction: float | None = None, *,
                     level: float = 0.95, power: float = 0.8) -> dict[str, float]:
    """Is A better than B on the same folds? Paired differences d = a - b, with three tests (notebook 04).

    Returns the mean difference and its sd, `t_p` (two-sided p of scipy's paired t-test), `t_p_corrected`
    (Nadeau & Bengio's corrected resampled t-test, whose variance term is (1/n + n_test/n_train) s^2 instead of
    s^2 / n because folds share training data; needs `test_fraction` = n_test / N) and `wilcoxon_p` (scipy's
    exact signed-rank test; with 5 folds its smallest two-sided p is 2/32 = 0.0625).

    With `test_fraction` also: `se_corrected` = sqrt(1/n + n_test/n_train) s_d, the corrected `level` confidence
    interval `ci_low`, `ci_high` = mean -/+ t_{n-1, (1+level)/2} se_corrected, and `mdd`, the minimum detectable
    difference: the true mean difference this design detects with probability `power` at the two-sided
    1 - `level` level, (t_{n-1, (1+level)/2} + t_{n-1, power}) se_corrected. `mdd` uses the *observed* s_d, so
    it is itself an estimate. For r repetitions of k-fold CV pass all n = r k differences (Bouckaert & Frank).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"a and b must be equal-length vectors with at least 2 folds; got shapes {a.shape}, {b.shape}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be finite (a NaN metric means a fold lacked a class).")
    if not (0.0 < level < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"level and power must lie in (0, 1); got {level!r}, {power!r}.")
    d = a - b
    k = d.size
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    result = {"mean_difference": mean, "sd_difference": sd, "folds": float(k), "wins": float((d > 0).sum())}
    if test_fraction is not None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be n_test / N in (0, 1); got {test_fraction!r}.")
        ratio = test_fraction / (1.0 - test_fraction)  # n_test / n_train
        se = math.sqrt(1.0 / k + ratio) * sd
        t_crit = float(stats.t.ppf(0.5 + level / 2, df=k - 1))
        result.update(se_corrected=se, ci_low=mean - t_crit * se, ci_high=mean + t_crit * se,
                      mdd=(t_crit + float(stats.t.ppf(power, df=k - 1))) * se)
    if sd == 0:  # every fold moved by exactly the same amount: no spread to test against
        p = 1.0 if mean == 0 else 0.0
        result.update(t=math.nan, t_p=p, t_p_corrected=p, wilcoxon_p=math.nan)
        return result
    t_result = stats.ttest_rel(a, b)
    result["t"], result["t_p"] = float(t_result.statistic), float(t_result.pvalue)
    if test_fraction is not None:
        t_corrected = mean / result["se_corrected"]
        result["t_corrected"] = t_corrected
        result["t_p_corrected"] = float(2 * stats.t.sf(abs(t_corrected), df=k - 1))
    else:
        result["t_p_corrected"] = math.nan
    nonzero = d[d != 0]
    result["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue) if nonzero.size else math.nan
    return result


def bootstrap_metric(labels: object, model_probabilities: Sequence[object], *, metric: str = "auc",
                     positive_class: int | None = None, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """The metric of `model_probabilities` (M models' `(N, K)` on the same N images) over bootstrap resamples.

    Resample `i` draws N images with replacement (`np.random.default_rng(seed).integers(0, N, (resamples, N))`),
    scores every model on them with `classification_metrics` and averages over the M models: returns
    `(resamples,)`, NaN where a resample lacks a class. The same `seed` draws the same resamples for every
    call, so two methods scored on the same images are compared pairwise by subtracting their vectors.
    """
    labels = _as_labels(labels)
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric must be one of {METRIC_NAMES}; got {metric!r}.")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1; got {resamples!r}.")
    models = [np.asarray(p.cpu() if hasattr(p, "cpu") else p, dtype=float) for p in model_probabilities]
    if not models or any(p.ndim != 2 or p.shape[0] != labels.shape[0] for p in models):
        raise ValueError(f"model_probabilities must be a non-empty list of (N, K) arrays with N = {labels.shape[0]}.")
    index = np.random.default_rng(seed).integers(0, labels.shape[0], size=(resamples, labels.shape[0]))
    binary_auc_only = metric == "auc" and models[0].shape[1] == 2 and positive_class in (0, 1)
    values = np.full(resamples, math.nan)
    for i, rows in enumerate(index):
        sample = labels[rows]
        if np.unique(sample).size < models[0].shape[1]:
            continue  # a resample without some class: AUC/sensitivity undefined
        if binary_auc_only:  # the same number as classification_metrics' AUC, without the rest of the table
            values[i] = np.mean([binary_auc(sample == positive_class, p[rows, positive_class]) for p in models])
        else:
            values[i] = np.mean([classification_metrics(sample, p[rows], positive_class)[metric] for p in models])
    return values


def percentile_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval (lower, upper) holding `level` of the finite `values`."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError("no finite bootstrap values to take an interval of.")
    low, high = np.percentile(array, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def threshold_for_sensitivity(labels: object, positive_scores: object, positive_class: int,
                              target: float = 0.9) -> float:
    """The highest threshold t with sensitivity >= `target` when "score >= t" means positive (notebook 04).

    Choose it on validation data (never on the test set); `operating_point` then applies it to other data.
    """
    labels = _as_labels(labels)
    scores = np.asarray(positive_scores, dtype=float).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} scores.")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1]; got {target!r}.")
    positives = np.sort(scores[labels == positive_class])[::-1]  # highest first
    if positives.size == 0:
        raise ValueError(f"no sample of the positive class {positive_class}: the threshold is undefined.")
    needed = math.ceil(target * positives.size - 1e-9)  # positives that must score >= t
    return float(positives[max(needed, 1) - 1])


def operating_point(labels: object, positive_scores: object, positive_class: int, threshold: float
                    ) -> dict[str, float]:
    """Sensitivity and specificity when "score >= `threshold`" is called positive."""
    labels = _as_labels(labels)
    scores = np.asarray(positive_scores, dtype=float).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} scores.")
    called, is_positive = scores >= threshold, labels == positive_class
    return {"sensitivity": _safe_ratio((called & is_positive).sum(), is_positive.sum()),
            "specificity": _safe_ratio((~called & ~is_positive).sum(), (~is_positive).sum())}

__all__ = [
    "METRIC_NAMES", "POSITIVE_CLASS", "Fold", "LeakageError", "binary_auc", "bootstrap_metric", "check_fold",
    "classification_metrics", "confusion_matrix", "mean_and_sd", "operating_point", "paired_fold_test",
    "percentile_interval", "repeated_stratified_folds", "stratified_folds", "summarise_folds",
    "threshold_for_sensitivity",
]
