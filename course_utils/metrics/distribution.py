"""Distribution metrics for generated images: Fréchet distance, KID, precision/recall, density/coverage, Inception
Score, KS, class balance.

Introduced in notebook 03 (`03_evaluating_gans`).

The sample-based metrics compare two *sets*: real and fake (generated). Most take feature matrices
`(N, D)` (one row per image, e.g. the activations of a classifier's penultimate layer, or flattened
pixels for toy data) as torch tensors or NumPy arrays; `ks_intensity_test` takes images `(B, C, H, W)`
in `[0, 1]`. Every computation runs on the CPU in float64, so results do not depend on the device or
on float32 round-off, and every function validates its inputs and says what was wrong and how to fix it.

- `frechet_distance`: distance between Gaussians fitted to the two feature sets (FID when the features
  come from Inception-v3); one number that mixes fidelity and diversity.
- `kid` (Bińkowski et al., 2018): the kernel distance, an *unbiased* estimate at any n (use it beside the
  Fréchet distance when n is small compared with the feature dimension).
- `precision_recall` (Kynkäänniemi et al., 2019): fidelity (are fakes inside the real manifold?) and
  diversity (are reals inside the fake manifold?) as two separate numbers; manifolds are unions of k-NN balls.
- `density_coverage` (Naeem et al., 2020): the same two questions, less sensitive to outliers.
  Both k-NN metrics follow the reference code `prdc`: a point on a ball's boundary is outside.
- `inception_score` (Salimans et al., 2016): confident and varied class predictions; never looks at real images.
- `ks_intensity_test`: two-sample Kolmogorov–Smirnov test on pixel intensities (scipy.stats.ks_2samp).
- `class_balance` / `normalised_class_entropy`: how evenly a classifier spreads the fakes over the
  classes; a collapsed generator puts nearly all of them in one class.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg
import scipy.stats
import torch

ArrayLike = Any  # torch.Tensor | np.ndarray
CHUNK_ELEMENTS = 2**22  # largest distance block held at once: 4 Mi float64 values = 32 MiB
RANGE_TOLERANCE = 1e-6  # images may overshoot [0, 1] by this much (float round-off)
IMAG_TOLERANCE = 1e-3  # largest imaginary part of sqrtm (relative to its real part) treated as round-off
SQRTM_EPS = 1e-6  # added to both covariance diagonals when sqrtm of their product fails


# ----------------------------------------------------------------------------- input checks


def _as_float64_tensor(values: ArrayLike, name: str) -> torch.Tensor:
    """A detached float64 CPU tensor from a torch tensor or NumPy array of real numbers."""
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values))
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array; got {type(values).__name__}.")
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {values.dtype}.")
    return values.detach().to(device="cpu", dtype=torch.float64)


def _check_finite(values: torch.Tensor, name: str) -> None:
    """ValueError if `values` holds NaN or ±inf (they poison every statistic)."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        num_bad = int(bad.sum())
        rows = torch.nonzero(bad.reshape(values.shape[0], -1).any(dim=1)).flatten()[:5].tolist()
        raise ValueError(
            f"{name} (shape {tuple(values.shape)}) contains {num_bad} NaN or infinite values, e.g. in rows "
            f"{rows}. Remove those samples or find where they came from (a diverged generator, a division by zero)."
        )


def _as_feature_matrix(features: ArrayLike, name: str, min_samples: int = 1) -> torch.Tensor:
    """Validated float64 `(N, D)` CPU tensor with N >= `min_samples` and finite values."""
    matrix = _as_float64_tensor(features, name)
    shape = tuple(matrix.shape)
    if matrix.ndim != 2:
        hint = ""
        if matrix.ndim == 1:
            hint = " For a single feature per sample use `x[:, None]`; for a single sample use `x[None]`."
        elif matrix.ndim >= 3:
            hint = (
                " Images must be turned into one row per image first: flatten them (`x.flatten(1)`) "
                "or pass them through a feature extractor."
            )
        raise ValueError(
            f"{name} must be a feature matrix of shape (N, D) (N samples, D features); "
            f"received shape {shape} ({matrix.ndim} dimensions).{hint}"
        )
    if shape[1] == 0:
        raise ValueError(f"{name} has shape {shape}: D = 0 features per sample; need at least one.")
    if shape[0] < min_samples:
        raise ValueError(
            f"{name} has shape {shape}: N = {shape[0]} samples, but this needs at least {min_samples}."
        )
    _check_finite(matrix, name)
    return matrix


def _check_same_dimension(real: torch.Tensor, fake: torch.Tensor, names: tuple[str, str]) -> None:
    """ValueError unless both feature matrices have the same number of columns D."""
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"{names[0]} has D = {real.shape[1]} features per sample (shape {tuple(real.shape)}) but {names[1]} "
            f"has D = {fake.shape[1]} (shape {tuple(fake.shape)}); both must come from the same feature "
            "extractor (same layer) or the same image size."
        )


def _check_k(k: int, matrices: dict[str, torch.Tensor]) -> None:
    """ValueError unless k is a positive integer smaller than every set's sample count N."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k (number of nearest neighbours) must be a positive integer; got {k!r}.")
    for name, matrix in matrices.items():
        if matrix.shape[0] <= k:
            raise ValueError(
                f"{name} has N = {matrix.shape[0]} samples (shape {tuple(matrix.shape)}), but the k-th nearest "
                f"neighbour with k = {k} needs N > k, i.e. at least {k + 1} samples. "
                "Pass more samples or a smaller k."
            )


# ----------------------------------------------------------------------------- Fréchet distance


def gaussian_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean `(D,)` and unbiased covariance `(D, D)` (float64 NumPy) of a feature matrix `(N, D)`, N >= 2."""
    matrix = _as_feature_matrix(features, "features", min_samples=2).numpy()  # (N, D)
    mu = matrix.mean(axis=0)  # (D,)
    sigma = np.atleast_2d(np.cov(matrix, rowvar=False))  # (D, D), divides by N - 1
    return mu, sigma


def _as_stats(mu: ArrayLike, sigma: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 mean `(D,)` and symmetric covariance `(D, D)`."""
    mu_t = _as_float64_tensor(mu, f"mu{name}")
    sigma_t = _as_float64_tensor(sigma, f"sigma{name}")
    if mu_t.ndim != 1 or sigma_t.shape != (mu_t.shape[0], mu_t.shape[0]):
        raise ValueError(
            f"mu{name} must have shape (D,) and sigma{name} shape (D, D); received {tuple(mu_t.shape)} and "
            f"{tuple(sigma_t.shape)}. Compute them with gaussian_stats(features)."
        )
    _check_finite(mu_t[None], f"mu{name}")
    _check_finite(sigma_t, f"sigma{name}")
    sigma_np = sigma_t.numpy()
    asymmetry = float(np.abs(sigma_np - sigma_np.T).max())
    if asymmetry > 1e-8 * max(1.0, float(np.abs(sigma_np).max())):
        raise ValueError(
            f"sigma{name} must be a symmetric covariance matrix; its largest |S - S.T| entry is {asymmetry:.3g}. "
            "Compute it with gaussian_stats(features)."
        )
    return mu_t.numpy(), sigma_np


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """Tr((S1 S2)^{1/2}) with scipy.linalg.sqrtm; retries with eps*I added to both when sqrtm fails."""

    def attempt(s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, bool]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "matrix is singular": judged below from the result itself
            root = np.asarray(scipy.linalg.sqrtm(s1 @ s2))  # (D, D), maybe complex
        if not np.isfinite(root).all():
            return root, False
        imag = float(np.abs(np.imag(root)).max()) if np.iscomplexobj(root) else 0.0
        return root, imag <= IMAG_TOLERANCE * max(1.0, float(np.abs(np.real(root)).max()))

    root, ok = attempt(sigma1, sigma2)
    if not ok:
        warnings.warn(
            f"sqrtm(sigma1 @ sigma2) was not finite or not real (the covariances are singular or nearly so, "
            f"usually because there are fewer samples than features); retrying with {eps:g} * I added to both "
            "covariance matrices. Use more samples than feature dimensions for a reliable Fréchet distance.",
            RuntimeWarning,
            stacklevel=3,
        )
        offset = eps * np.eye(sigma1.shape[0])
        root, ok = attempt(sigma1 + offset, sigma2 + offset)
        if not ok:
            raise ValueError(
                "sqrtm(sigma1 @ sigma2) has no finite real square root even after adding "
                f"{eps:g} * I to both covariances; check that they are covariance matrices (symmetric, "
                "positive semi-definite) or pass a larger eps."
            )
    return float(np.trace(np.real(root)))


def frechet_distance_from_stats(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, eps: float = SQRTM_EPS
) -> float:
    """Fréchet distance ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) between two Gaussians (float64)."""
    mu1_np, sigma1_np = _as_stats(mu1, sigma1, "1")
    mu2_np, sigma2_np = _as_stats(mu2, sigma2, "2")
    if mu1_np.shape != mu2_np.shape:
        raise ValueError(
            f"mu1 has D = {mu1_np.shape[0]} and mu2 has D = {mu2_np.shape[0]}; both Gaussians must live in the "
            "same feature space (same extractor, same layer)."
        )
    mean_term = float(np.sum((mu1_np - mu2_np) ** 2))
    trace_term = float(np.trace(sigma1_np) + np.trace(sigma2_np))
    distance = mean_term + trace_term - 2.0 * _trace_sqrt_product(sigma1_np, sigma2_np, eps)
    return max(distance, 0.0)  # >= 0 mathematically; a tiny negative value is round-off


def frechet_distance(real_features: ArrayLike, fake_features: ArrayLike, eps: float = SQRTM_EPS) -> float:
    """Fréchet distance between Gaussians fitted to real `(N, D)` and fake `(M, D)` features (0 = same stats)."""
    real = _as_feature_matrix(real_features, "real_features", min_samples=2)
    fake = _as_feature_matrix(fake_features, "fake_features", min_samples=2)
    _check_same_dimension(real, fake, ("real_features", "fake_features"))
    for name, matrix in (("real_features", real), ("fake_features", fake)):
        if matrix.shape[0] <= matrix.shape[1]:
            warnings.warn(
                f"{name} has N = {matrix.shape[0]} samples for D = {matrix.shape[1]} features: its covariance is "
                "rank-deficient and the Fréchet distance is unreliable (biased upwards, noisy). Use N > D samples "
                "(FID with 2048-D Inception features is usually computed on 10,000 or more) or fewer features.",
                RuntimeWarning,
                stacklevel=2,
            )
    mu1, sigma1 = gaussian_stats(real)
    mu2, sigma2 = gaussian_stats(fake)
    return frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, eps=eps)


# ----------------------------------------------------------------------------- nearest neighbours


def _rows_per_chunk(num_columns: int) -> int:
    """How many query rows fit in one distance block of at most CHUNK_ELEMENTS values."""
    return max(1, CHUNK_ELEMENTS // max(1, num_columns))


def knn_radii(features: ArrayLike, k: int = 3) -> torch.Tensor:
    """Radius of each sample's k-NN ball: distance to its k-th nearest other sample, float64 `(N,)`."""
    points = _as_feature_matrix(features, "features")
    _check_k(k, {"features": points})
    return _kth_neighbour_radii(points, k)


def _nearest(
    queries: torch.Tensor, reference: torch.Tensor, exclude_self: bool = False, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest reference row for each query row: distances `(Nq,)` float64 and indices `(Nq,)` long."""
    num_queries, num_reference = queries.shape[0], reference.shape[0]
    best = torch.full((num_queries,), math.inf, dtype=torch.float64)
    best_index = torch.zeros(num_queries, dtype=torch.long)
    for q_start in range(0, num_queries, chunk):
        q_stop = min(q_start + chunk, num_queries)
        for r_start in range(0, num_reference, chunk):
            r_stop = min(r_start + chunk, num_reference)
            distances = torch.cdist(queries[q_start:q_stop], reference[r_start:r_stop])  # (q, r)
            if exclude_self:
                low, high = max(q_start, r_start), min(q_stop, r_stop)  # rows that meet themselves here
                if low < high:
                    own = torch.arange(low, high)
                    distances[own - q_start, own - r_start] = math.inf
            block_best, block_index = distances.min(dim=1)  # (q,), (q,)
            better = block_best < best[q_start:q_stop]
            best[q_start:q_stop] = torch.where(better, block_best, best[q_start:q_stop])
            best_index[q_start:q_stop] = torch.where(
                better, block_index + r_start, best_index[q_start:q_stop]
            )
    # cdist's fast formula |a|^2 + |b|^2 - 2ab leaves ~1e-7 of round-off; recompute the winners directly,
    # so an exact copy has distance exactly 0.
    exact = (queries - reference[best_index]).norm(dim=1)  # (Nq,)
    return exact, best_index


# ----------------------------------------------------------------------------- precision / recall, density / coverage


def _exact_cdist(queries: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Euclidean distances `(Nq, Nr)` computed from the differences (no |a|^2 + |b|^2 - 2ab shortcut).

    The same pair of rows gets the same distance in every call, and identical rows get exactly 0, so a
    strict comparison `d < radius` is decided by the data, not by round-off.
    """
    return torch.cdist(queries, reference, compute_mode="donot_use_mm_for_euclid_dist")


def _kth_neighbour_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of `points` `(N, D)` to its k-th nearest *other* row, `(N,)` (exact distances)."""
    num_points = points.shape[0]
    radii = torch.empty(num_points, dtype=torch.float64)
    rows = _rows_per_chunk(num_points)
    for start in range(0, num_points, rows):
        stop = min(start + rows, num_points)
        distances = _exact_cdist(points[start:stop], points)  # (rows, N)
        own = torch.arange(start, stop)
        distances[own - start, own] = math.inf  # a point is not its own neighbour (duplicates still count)
        radii[start:stop] = distances.topk(k, dim=1, largest=False).values[:, -1]
    return radii


def _inside_balls(real: torch.Tensor, fake: torch.Tensor, real_radii: torch.Tensor,
                  fake_radii: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Every ball comparison from one real-fake distance matrix, strictly inside (`<`, as Naeem et al.'s `prdc`).

    Returns, per fake, how many real balls contain it (`(M,)`); per real, whether some fake lies in its own ball
    (`(N,)`); and, when `fake_radii` is given, per real whether it lies in some fake ball (`(N,)`).
    Blocks of real rows keep memory small; each distance is computed once.
    """
    fake_in_real_balls = torch.zeros(fake.shape[0], dtype=torch.long)
    real_ball_has_fake = torch.zeros(real.shape[0], dtype=torch.bool)
    real_in_fake_balls = torch.zeros(real.shape[0], dtype=torch.bool)
    rows = _rows_per_chunk(fake.shape[0])
    for start in range(0, real.shape[0], rows):
        stop = min(start + rows, real.shape[0])
        distances = _exact_cdist(real[start:stop], fake)  # (rows, M): real i (row) to fake j (column)
        inside_real = distances < real_radii[start:stop, None]  # fake j inside real ball i
        fake_in_real_balls += inside_real.sum(dim=0)
        real_ball_has_fake[start:stop] = inside_real.any(dim=1)
        if fake_radii is not None:
            real_in_fake_balls[start:stop] = (distances < fake_radii[None, :]).any(dim=1)
    return {"fake_in_real_balls": fake_in_real_balls, "real_ball_has_fake": real_ball_has_fake,
            "real_in_fake_balls": real_in_fake_balls}


def _checked_pair(real_features: ArrayLike, fake_features: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float64 real `(N, D)` and fake `(M, D)` feature matrices with the same D."""
    real = _as_feature_matrix(real_features, "real_features")
    fake = _as_feature_matrix(fake_features, "fake_features")
    _check_same_dimension(real, fake, ("real_features", "fake_features"))
    return real, fake


def precision_recall(real_features: ArrayLike, fake_features: ArrayLike, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN ball manifolds; both in [0, 1].

    precision = fraction of fake samples inside the real manifold (fidelity);
    recall = fraction of real samples inside the fake manifold (diversity). The manifold of a set is
    the union of balls around its samples, each with radius = distance to the sample's k-th nearest
    neighbour in the same set. "Inside" means strictly closer than the radius, the convention of the
    reference code (`prdc`, Naeem et al. 2020), and every comparison comes from one distance matrix.
    """
    real, fake = _checked_pair(real_features, fake_features)
    _check_k(k, {"real_features": real, "fake_features": fake})
    inside = _inside_balls(real, fake, _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k))
    precision = (inside["fake_in_real_balls"] > 0).double().mean()
    recall = inside["real_in_fake_balls"].double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real_features: ArrayLike, fake_features: ArrayLike, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al., 2020), using k-NN balls around the *real* samples only.

    density = (1 / (k M)) * sum over the M fakes of how many real balls contain each fake
    (1 for an exact copy of the real set; about 1 when fake and real match; above 1 when fakes crowd
    into dense real regions, unbounded); coverage = fraction of real samples whose ball contains at
    least one fake, in [0, 1] (about 1 - 2^-k, i.e. 0.97 for k = 5, when fake and real match).
    "Inside" is strict (`<`), as in the reference code `prdc`, decided from one distance matrix.
    """
    real, fake = _checked_pair(real_features, fake_features)
    _check_k(k, {"real_features": real})
    inside = _inside_balls(real, fake, _kth_neighbour_radii(real, k), None)
    density = inside["fake_in_real_balls"].sum().double() / (k * fake.shape[0])
    coverage = inside["real_ball_has_fake"].double().mean()
    return {"density": float(density), "coverage": float(coverage)}


# ----------------------------------------------------------------------------- kernel distance (KID)


def _polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KID's cubic kernel k(x, y) = (x . y / D + 1)^3 between rows of `a` `(N, D)` and `b` `(M, D)`, `(N, M)`."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _unbiased_mmd2(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Unbiased estimate of MMD^2 between two samples with the cubic polynomial kernel (may be below 0)."""
    n, m = real.shape[0], fake.shape[0]
    k_rr, k_ff, k_rf = _polynomial_kernel(real, real), _polynomial_kernel(fake, fake), _polynomial_kernel(real, fake)
    within_real = (k_rr.sum() - k_rr.diagonal().sum()) / (n * (n - 1))  # mean over i != j
    within_fake = (k_ff.sum() - k_ff.diagonal().sum()) / (m * (m - 1))
    return float(within_real + within_fake - 2.0 * k_rf.mean())


def kid(real_features: ArrayLike, fake_features: ArrayLike, *, subset_size: int | None = None,
        num_subsets: int = 100, seed: int = 0) -> dict[str, float]:
    """Kernel Inception Distance (Bińkowski et al., 2018) between feature sets `(N, D)` and `(M, D)`.

    KID is the squared maximum mean discrepancy with the kernel k(x, y) = (x . y / D + 1)^3, estimated
    *without bias*: two samples of the same distribution give 0 on average at any n (a Fréchet distance
    is biased upwards at small n), so a single estimate can be slightly negative. With
    `subset_size=None` the estimate uses the full sets once (`sd` is NaN); otherwise it is the mean over
    `num_subsets` random subsets of `subset_size` samples from each set (without replacement, seeded),
    as Bińkowski et al. and torchmetrics do, and `sd` is the spread over subsets.
    Returns {"kid", "sd", "num_subsets", "subset_size"}.
    """
    real, fake = _checked_pair(real_features, fake_features)
    for name, matrix in (("real_features", real), ("fake_features", fake)):
        if matrix.shape[0] < 2:
            raise ValueError(f"{name} has N = {matrix.shape[0]} sample(s); the unbiased estimate needs at least 2.")
    if subset_size is None:
        return {"kid": _unbiased_mmd2(real, fake), "sd": math.nan, "num_subsets": 1,
                "subset_size": min(real.shape[0], fake.shape[0])}
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an integer >= 2 or None (use the full sets); got {subset_size!r}.")
    if subset_size > min(real.shape[0], fake.shape[0]):
        raise ValueError(
            f"subset_size = {subset_size} is larger than the sets (N = {real.shape[0]} real, M = {fake.shape[0]} "
            "fake); pass subset_size <= min(N, M), or None to use the full sets."
        )
    if isinstance(num_subsets, bool) or not isinstance(num_subsets, int) or num_subsets < 1:
        raise ValueError(f"num_subsets must be a positive integer; got {num_subsets!r}.")
    rng = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        real_rows = torch.randperm(real.shape[0], generator=rng)[:subset_size]
        fake_rows = torch.randperm(fake.shape[0], generator=rng)[:subset_size]
        values.append(_unbiased_mmd2(real[real_rows], fake[fake_rows]))
    spread = float(np.std(values, ddof=1)) if num_subsets > 1 else math.nan
    return {"kid": float(np.mean(values)), "sd": spread, "num_subsets": num_subsets, "subset_size": subset_size}


# ----------------------------------------------------------------------------- Inception Score


def inception_score(probabilities: ArrayLike, splits: int = 1) -> dict[str, float]:
    """Inception Score (Salimans et al., 2016) from class probabilities p(y|x) `(N, K)` of a classifier.

    IS = exp( mean over x of KL(p(y|x) || p(y)) ), with p(y) the mean of p(y|x) over the set: high when each
    image is classified confidently *and* the set spreads over the classes; between 1 and K. It never looks
    at real images, so it cannot see whether the images are realistic in any other way, or copied.
    With `splits` > 1 the set is cut into that many equal parts (the original recipe used 10), the score is
    computed per part and {"is": mean, "sd": spread over parts} is returned; with 1 part `sd` is NaN.
    """
    probs = _as_float64_tensor(probabilities, "probabilities")
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"probabilities must be a (N, K) matrix of class probabilities with K >= 2 classes; received shape "
            f"{tuple(probs.shape)}. From logits use `logits.softmax(dim=1)`."
        )
    _check_finite(probs, "probabilities")
    row_sums = probs.sum(dim=1)
    if float(probs.min()) < 0 or float((row_sums - 1).abs().max()) > 1e-4:
        raise ValueError(
            "probabilities must be non-negative and each row must sum to 1 (got row sums between "
            f"{float(row_sums.min()):.4g} and {float(row_sums.max()):.4g}); pass softmax outputs, not logits."
        )
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= probs.shape[0]:
        raise ValueError(f"splits must be an integer in 1..N = {probs.shape[0]}; got {splits!r}.")
    scores = []
    for part in torch.tensor_split(probs, splits):
        marginal = part.mean(dim=0, keepdim=True)  # (1, K): p(y)
        kl = torch.where(part > 0, part * (part.log() - marginal.log()), torch.zeros_like(part)).sum(dim=1)  # (n,)
        scores.append(float(kl.mean().exp()))
    spread = float(np.std(scores, ddof=1)) if splits > 1 else math.nan
    return {"is": float(np.mean(scores)), "sd": spread}


# ----------------------------------------------------------------------------- pixel intensities


def _as_unit_images(images: ArrayLike, name: str) -> torch.Tensor:
    """Validated `(B, C, H, W)` (or `(B, C, D, H, W)`) float images in [0, 1], unchanged dtype, on the CPU."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array; got {type(images).__name__}.")
    images = images.detach().cpu()
    shape = tuple(images.shape)
    if images.ndim not in (4, 5):
        raise ValueError(
            f"{name} must be a batch of images (B, C, H, W) (or volumes (B, C, D, H, W)); received shape {shape}. "
            "For a single image add a batch axis (`x[None]`); for grey images without a channel axis use `x[:, None]`."
        )
    if images.shape[0] == 0 or images.numel() == 0:
        raise ValueError(f"{name} is empty (shape {shape}); need at least one image with at least one pixel.")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} has dtype {images.dtype}; pass float images in [0, 1] (for uint8 use `x.float() / 255`)."
        )
    _check_finite(images, name)
    low, high = float(images.min()), float(images.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        hint = ""
        if low >= -1.0 - RANGE_TOLERANCE and high <= 1.0 + RANGE_TOLERANCE:
            hint = (
                " This looks like model-range data in [-1, 1]: convert with "
                "course_utils.data.to_unit_range(images) first."
            )
        elif low >= 0.0 and high <= 255.0:
            hint = " This looks like 0..255 data: divide by 255 first."
        raise ValueError(
            f"{name} must hold intensities in [0, 1]; its values span [{low:.4g}, {high:.4g}].{hint}"
        )
    return images


def _pixel_sample(images: torch.Tensor, max_pixels: int | None, seed: int) -> np.ndarray:
    """All pixel values (flattened) as float64, or `max_pixels` of them drawn without replacement with `seed`."""
    flat = images.reshape(-1)  # (B*C*H*W,)
    if max_pixels is not None and flat.numel() > max_pixels:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(flat.numel(), size=max_pixels, replace=False, shuffle=False))
        flat = flat[torch.from_numpy(chosen)]
    return flat.to(torch.float64).numpy()


def ks_intensity_test(
    real_images: ArrayLike, fake_images: ArrayLike, max_pixels: int | None = 100_000, seed: int = 0
) -> dict[str, float]:
    """Two-sample Kolmogorov–Smirnov test on pixel intensities of images `(B, C, H, W)` in [0, 1].

    Returns statistic (the largest gap between the two intensity CDFs: 0 = identical histograms,
    1 = disjoint), pvalue (scipy.stats.ks_2samp, two-sided) and how many pixels of each set were used.
    Each set is flattened and, when it has more than `max_pixels` values, subsampled to `max_pixels`
    (without replacement, reproducibly from `seed`; `None` keeps all).
    Read the statistic as the effect size: pixels of one image are not independent, so the p-value is
    over-confident, and with many pixels even a harmless difference gets a tiny p-value.
    """
    real = _as_unit_images(real_images, "real_images")
    fake = _as_unit_images(fake_images, "fake_images")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real_images has shape {tuple(real.shape)} and fake_images {tuple(fake.shape)}: each image must have "
            "the same (C, H, W) in both sets. Resize one set (e.g. torch.nn.functional.interpolate) or convert "
            "RGB to grey first."
        )
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise ValueError(
            f"max_pixels must be a positive integer or None (use all pixels); got {max_pixels!r}."
        )
    real_pixels = _pixel_sample(real, max_pixels, seed)
    fake_pixels = _pixel_sample(fake, max_pixels, seed + 1)
    result = scipy.stats.ks_2samp(real_pixels, fake_pixels)
    return {
        "statistic": float(result.statistic),
        "pvalue": float(result.pvalue),
        "num_real_pixels": int(real_pixels.size),
        "num_fake_pixels": int(fake_pixels.size),
    }


# ----------------------------------------------------------------------------- class balance (mode collapse)


def class_balance(predicted_labels: ArrayLike, num_classes: int) -> torch.Tensor:
    """Fraction of samples per class, float64 `(num_classes,)` summing to 1, from integer labels `(N,)`."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
    if isinstance(predicted_labels, np.ndarray):
        predicted_labels = torch.from_numpy(np.ascontiguousarray(predicted_labels))
    if not isinstance(predicted_labels, torch.Tensor):
        raise TypeError(
            f"predicted_labels must be a torch.Tensor or a NumPy array; got {type(predicted_labels).__name__}."
        )
    labels = predicted_labels.detach().cpu()
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # (N, 1) column of labels, as MedMNIST stores them
    if labels.ndim != 1:
        raise ValueError(
            f"predicted_labels must be a 1-D tensor of class indices (N,); received shape {tuple(labels.shape)}. "
            "For classifier outputs (N, num_classes) use `logits.argmax(dim=1)`."
        )
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"predicted_labels must hold integer class indices; got dtype {labels.dtype}. "
            "For probabilities or logits use `.argmax(dim=1)`; for integer-valued floats use `.long()`."
        )
    if labels.numel() == 0:
        raise ValueError("predicted_labels is empty (shape (0,)); need at least one prediction.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"predicted_labels must lie in 0..{num_classes - 1} for num_classes = {num_classes}; "
            f"they span {low}..{high}."
        )
    counts = torch.bincount(labels.long(), minlength=num_classes)  # (num_classes,)
    return counts.double() / labels.numel()


def normalised_class_entropy(fractions: ArrayLike) -> float:
    """Entropy of class fractions `(K,)` divided by log K: 1 = perfectly balanced, 0 = all in one class."""
    probs = _as_float64_tensor(fractions, "fractions")
    if probs.ndim != 1 or probs.shape[0] < 2:
        raise ValueError(
            f"fractions must be a 1-D histogram over K >= 2 classes (from class_balance); "
            f"received shape {tuple(probs.shape)}."
        )
    _check_finite(probs[None], "fractions")
    if float(probs.min()) < 0 or abs(float(probs.sum()) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be non-negative and sum to 1; got min {float(probs.min()):.4g}, "
            f"sum {float(probs.sum()):.6g}. Compute them with class_balance(predicted_labels, num_classes)."
        )
    nonzero = probs[probs > 0]
    entropy = -(nonzero * nonzero.log()).sum()  # 0 * log 0 = 0
    return float(entropy / math.log(probs.shape[0]))
