"""Distribution metrics and the memorisation audit, checked against closed forms, hand computations,
brute-force references (scipy / scikit-learn) and torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
import torch
from sklearn.neighbors import NearestNeighbors

from course_utils.metrics import (
    class_balance,
    density_coverage,
    distribution,
    find_training_copies,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    knn_radii,
    ks_intensity_test,
    memorisation_audit,
    nearest_neighbour_distances,
    normalised_class_entropy,
    perturbed_copies,
    precision_recall,
)


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """(n, d) standard normal samples shifted by `shift` in every coordinate."""
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    """A random symmetric positive-definite (d, d) matrix that does not commute with others."""
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix via eigh (independent of scipy.linalg.sqrtm)."""
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_reference(mu1, s1, mu2, s2) -> float:
    """FD with Tr((S1^1/2 S2 S1^1/2)^1/2) from symmetric eigendecompositions."""
    r1 = psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


# ----------------------------------------------------------------------------- Fréchet distance


def test_gaussian_stats_match_numpy():
    x = gaussian(50, 3, seed=0).numpy()
    mu, sigma = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, ddof=1), rtol=0, atol=1e-12)
    _, sigma_1d = gaussian_stats(x[:, :1])
    assert sigma_1d.shape == (1, 1)


def test_frechet_from_true_stats_equals_closed_form_for_diagonal_gaussians():
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    closed_form = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance_from_stats(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(
        closed_form, abs=1e-10
    )
    # the same pair rotated by a common orthogonal matrix (full covariances): FD is rotation invariant
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance_from_stats(q @ m1, q @ np.diag(v1) @ q.T, q @ m2, q @ np.diag(v2) @ q.T)
    assert rotated == pytest.approx(closed_form, abs=1e-9)


def test_frechet_from_stats_matches_eigh_reference_for_non_commuting_covariances():
    rng = np.random.default_rng(1)
    for d in (2, 5, 16):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_spd(d, rng), random_spd(d, rng)
        expected = frechet_reference(mu1, s1, mu2, s2)
        assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_frechet_matches_torchmetrics_internal_formula():
    try:
        from torchmetrics.image.fid import _compute_fid
    except ImportError as error:  # private helper: may move between torchmetrics versions
        pytest.skip(f"torchmetrics.image.fid._compute_fid not importable in this version ({error})")
    rng = np.random.default_rng(2)
    for d in (3, 12):
        a = rng.normal(size=(400, d)) @ rng.normal(size=(d, d))
        b = rng.normal(size=(300, d)) @ rng.normal(size=(d, d)) + 0.5
        mu1, s1 = gaussian_stats(a)
        mu2, s2 = gaussian_stats(b)
        as_t = [torch.from_numpy(v) for v in (mu1, s1, mu2, s2)]
        expected = float(_compute_fid(*as_t))
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)


def test_frechet_sample_estimate_approaches_closed_form():
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    closed_form = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # 5.343
    rng = np.random.default_rng(3)
    real = rng.normal(m1, np.sqrt(v1), size=(20_000, 3))
    fake = rng.normal(m2, np.sqrt(v2), size=(20_000, 3))
    # spread of the estimate over seeds at this N is about 0.02: 0.1 is ~5 standard deviations
    assert frechet_distance(real, fake) == pytest.approx(closed_form, abs=0.1)


def test_frechet_identity_symmetry_and_input_types():
    a = gaussian(500, 8, seed=4)
    b = gaussian(400, 8, seed=5, shift=0.3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a.float(), b.numpy()) == pytest.approx(frechet_distance(a, b), rel=1e-5)
    assert frechet_distance(a, b) > 8 * 0.3**2 * 0.5  # the mean shift alone contributes 0.72


def test_frechet_validation_messages():
    a = gaussian(20, 4, seed=6)
    with pytest.raises(ValueError, match=r"shape \(N, D\).*\(20,\)"):
        frechet_distance(a[:, 0], a)
    with pytest.raises(ValueError, match=r"flatten"):
        frechet_distance(a.reshape(20, 1, 2, 2), a)
    with pytest.raises(ValueError, match=r"D = 4.*D = 3"):
        frechet_distance(a, a[:, :3])
    with pytest.raises(ValueError, match=r"N = 1 samples.*at least 2"):
        frechet_distance(a[:1], a)
    bad = a.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite.*rows \[3\]"):
        frechet_distance(a, bad)
    with pytest.raises(TypeError, match="torch.Tensor or a NumPy array"):
        frechet_distance(a.tolist(), a)
    with pytest.raises(ValueError, match=r"sigma1 shape \(D, D\)"):
        frechet_distance_from_stats(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance_from_stats(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))


def test_frechet_warns_when_fewer_samples_than_features():
    a, b = gaussian(6, 10, seed=7), gaussian(6, 10, seed=8)
    with pytest.warns(RuntimeWarning, match=r"N = 6 samples for D = 10 features"):
        value = frechet_distance(a, b)
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    assert value == pytest.approx(frechet_reference(mu1, s1, mu2, s2), rel=1e-5)


def test_frechet_retries_with_eps_when_sqrtm_fails(monkeypatch):
    rng = np.random.default_rng(9)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = random_spd(4, rng), random_spd(4, rng)
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def failing_once(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(distribution.scipy.linalg, "sqrtm", failing_once)
    with pytest.warns(RuntimeWarning, match="retrying with 1e-06"):
        value = frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert len(calls) == 2
    offset = 1e-6 * np.eye(4)
    np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset))
    assert value == pytest.approx(frechet_reference(mu1, s1, mu2, s2), abs=1e-4)

    monkeypatch.setattr(distribution.scipy.linalg, "sqrtm", lambda m: np.full_like(m, np.nan))
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="no finite real square root"):
        frechet_distance_from_stats(mu1, s1, mu2, s2)


# ----------------------------------------------------------------------------- k-NN metrics: references


def brute_force_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density, coverage from full distance matrices (scipy) and sklearn k-NN radii."""

    def radii(x: np.ndarray) -> np.ndarray:
        distances, _ = (
            NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        )  # column 0 is the point itself
        return distances[:, k]

    real_r, fake_r = radii(real), radii(fake)
    real_fake = scipy.spatial.distance.cdist(real, fake)  # (N, M)
    inside_real = real_fake < real_r[:, None]  # fake j strictly inside real ball i
    inside_fake = real_fake < fake_r[None, :]  # real i strictly inside fake ball j
    return {
        "precision": inside_real.any(axis=0).mean(),
        "recall": inside_fake.any(axis=1).mean(),
        "density": inside_real.sum() / (k * fake.shape[0]),
        "coverage": (real_fake.min(axis=1) < real_r).mean(),
    }


def test_knn_radii_match_sklearn():
    x = gaussian(300, 5, seed=10).numpy()
    expected, _ = NearestNeighbors(n_neighbors=4).fit(x).kneighbors(x)
    np.testing.assert_allclose(knn_radii(x, k=3).numpy(), expected[:, 3], rtol=1e-9, atol=1e-9)


def test_hand_checked_1d_example():
    real = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    fake = torch.tensor([[0.5], [5.0], [10.5], [30.0]])
    # k = 1 radii: real 0, 1, 2 -> 1 (next neighbour one apart), real 10 -> 8 (nearest is 2);
    #              fake 0.5 -> 4.5, 5 -> 4.5, 10.5 -> 5.5, 30 -> 19.5.
    # precision: 0.5 in B(0, 1); 5 and 10.5 in B(10, 8); 30 in no real ball          -> 3/4
    # recall:    0, 1, 2 in B(0.5, 4.5); 10 in B(10.5, 5.5)                          -> 4/4
    # density:   0.5 in B(0,1) and B(1,1); 5 in B(10,8); 10.5 in B(10,8); 30 in none -> 4 / (1 * 4)
    # coverage:  nearest fake to 0, 1 is 0.5 (< 1); to 2 is 0.5 at 1.5 (> 1); to 10 is 10.5 (< 8) -> 3/4
    assert knn_radii(real, k=1).tolist() == [1.0, 1.0, 1.0, 8.0]
    assert precision_recall(real, fake, k=1) == {"precision": 0.75, "recall": 1.0}
    assert density_coverage(real, fake, k=1) == {"density": 1.0, "coverage": 0.75}


def test_knn_metrics_match_brute_force_reference_and_are_chunk_independent(monkeypatch):
    real = gaussian(400, 6, seed=11).numpy()
    fake = (gaussian(300, 6, seed=12) * 1.3 + 0.4).numpy()
    expected = brute_force_prdc(real, fake, k=3)
    expected_dc = brute_force_prdc(real, fake, k=5)
    pr, dc = precision_recall(real, fake, k=3), density_coverage(real, fake, k=5)
    assert pr["precision"] == pytest.approx(expected["precision"], abs=1e-12)
    assert pr["recall"] == pytest.approx(expected["recall"], abs=1e-12)
    assert dc["density"] == pytest.approx(expected_dc["density"], abs=1e-12)
    assert dc["coverage"] == pytest.approx(expected_dc["coverage"], abs=1e-12)
    assert 0 < pr["precision"] < 1 and 0 < pr["recall"] < 1  # a case where the reference check can fail
    monkeypatch.setattr(distribution, "CHUNK_ELEMENTS", 12_000)  # blocks of 30-40 rows
    assert precision_recall(real, fake, k=3) == pr
    assert density_coverage(real, fake, k=5) == dc


# ----------------------------------------------------------------------------- k-NN metrics: known answers


def test_identical_distributions_score_near_one():
    real, fake = gaussian(1500, 2, seed=13), gaussian(1500, 2, seed=14)
    pr = precision_recall(real, fake, k=3)
    # finite samples leave a few points just outside the other set's balls: within 0.05 of 1 in 2-D
    assert pr["precision"] >= 0.95 and pr["recall"] >= 0.95
    dc = density_coverage(real, fake, k=5)
    assert dc["density"] == pytest.approx(1.0, abs=0.05)  # E[density] = 1 for identical distributions
    assert dc["coverage"] == pytest.approx(1 - 2**-5, abs=0.03)  # Naeem et al.: E[coverage] ~ 1 - 1/2^k


def test_far_away_fake_scores_zero():
    real, fake = gaussian(1000, 3, seed=15), gaussian(1000, 3, seed=16, shift=20.0)
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(real, fake) == {"density": 0.0, "coverage": 0.0}


def test_mode_collapse_keeps_precision_and_halves_recall_and_coverage():
    real = gaussian(2000, 4, seed=17)
    real[:1000, 0] += 5.0  # two well separated modes at x0 = +5 and x0 = -5
    real[1000:, 0] -= 5.0
    fake = gaussian(1000, 4, seed=18)
    fake[:, 0] += 5.0  # all fakes from the +5 mode
    pr = precision_recall(real, fake, k=3)
    dc = density_coverage(real, fake, k=5)
    assert pr["precision"] >= 0.9
    assert pr["recall"] <= 0.55
    assert dc["coverage"] == pytest.approx(0.5, abs=0.05)


def test_knn_validation_messages():
    a = gaussian(3, 2, seed=19)
    with pytest.raises(ValueError, match=r"N = 3 samples.*k = 3 needs N > k"):
        precision_recall(a, gaussian(10, 2, seed=20), k=3)
    with pytest.raises(ValueError, match="positive integer"):
        density_coverage(a, a, k=0)
    with pytest.raises(ValueError, match=r"D = 2 .* D = 3"):
        precision_recall(gaussian(10, 2, seed=21), gaussian(10, 3, seed=22))


# ----------------------------------------------------------------------------- KS test on intensities


def unit_images(n: int, seed: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """(n, 1, 8, 8) uniform intensities in [low, high]."""
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, 1, 8, 8, generator=g)


def test_ks_matches_scipy_when_not_subsampled():
    real, fake = unit_images(20, seed=23), unit_images(15, seed=24) ** 1.2
    result = ks_intensity_test(real, fake)
    expected = scipy.stats.ks_2samp(real.double().flatten().numpy(), fake.double().flatten().numpy())
    assert result["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert result["pvalue"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert (result["num_real_pixels"], result["num_fake_pixels"]) == (20 * 64, 15 * 64)


def test_ks_same_distribution_high_pvalue_shifted_tiny_pvalue():
    real = unit_images(200, seed=25)
    assert ks_intensity_test(real, real) == {
        "statistic": 0.0,
        "pvalue": 1.0,
        "num_real_pixels": 12800,
        "num_fake_pixels": 12800,
    }
    same = ks_intensity_test(real, unit_images(200, seed=26))
    assert same["statistic"] < 0.03 and same["pvalue"] > 0.05
    shifted = ks_intensity_test(real, unit_images(200, seed=27, low=0.2, high=1.0))
    assert shifted["statistic"] == pytest.approx(0.2, abs=0.03)  # CDF gap of U(0,1) vs U(0.2,1) is 0.2
    assert shifted["pvalue"] < 1e-10


def test_ks_subsamples_deterministically():
    real, fake = unit_images(100, seed=28), unit_images(100, seed=29) * 0.9
    first = ks_intensity_test(real, fake, max_pixels=1000, seed=3)
    assert first == ks_intensity_test(real, fake, max_pixels=1000, seed=3)
    assert (first["num_real_pixels"], first["num_fake_pixels"]) == (1000, 1000)
    assert first != ks_intensity_test(real, fake, max_pixels=1000, seed=4)
    assert ks_intensity_test(real, fake, max_pixels=None)["num_real_pixels"] == 6400


def test_ks_validation_messages():
    real = unit_images(4, seed=30)
    with pytest.raises(ValueError, match=r"to_unit_range"):
        ks_intensity_test(real, real * 2 - 1)
    with pytest.raises(ValueError, match=r"divide by 255"):
        ks_intensity_test(real * 255, real)
    with pytest.raises(ValueError, match=r"uint8.*x.float\(\) / 255"):
        ks_intensity_test((real * 255).to(torch.uint8), real)
    with pytest.raises(ValueError, match=r"same \(C, H, W\)"):
        ks_intensity_test(real, torch.rand(4, 1, 16, 16))
    with pytest.raises(ValueError, match=r"received shape \(8, 8\)"):
        ks_intensity_test(real[0, 0], real)
    with pytest.raises(ValueError, match="max_pixels"):
        ks_intensity_test(real, real, max_pixels=0)


# ----------------------------------------------------------------------------- class balance


def test_class_balance_and_entropy_simple_cases():
    fractions = class_balance(torch.tensor([0, 0, 1, 2]), num_classes=4)
    assert fractions.tolist() == [0.5, 0.25, 0.25, 0.0]
    assert class_balance(np.array([[1], [1]]), num_classes=2).tolist() == [0.0, 1.0]  # MedMNIST (N, 1) labels
    assert normalised_class_entropy(torch.full((5,), 0.2, dtype=torch.float64)) == pytest.approx(
        1.0, abs=1e-12
    )
    assert normalised_class_entropy(torch.tensor([0.0, 1.0, 0.0])) == 0.0
    expected = scipy.stats.entropy(fractions.numpy()) / math.log(4)
    assert normalised_class_entropy(fractions) == pytest.approx(expected, abs=1e-12)


def test_class_balance_validation_messages():
    with pytest.raises(ValueError, match=r"argmax\(dim=1\)"):
        class_balance(torch.randn(5, 3), num_classes=3)
    with pytest.raises(ValueError, match=r"integer class indices; got dtype torch.float32"):
        class_balance(torch.tensor([0.0, 1.0]), num_classes=2)
    with pytest.raises(ValueError, match=r"0\.\.1 for num_classes = 2; they span 0\.\.2"):
        class_balance(torch.tensor([0, 2]), num_classes=2)
    with pytest.raises(ValueError, match="sum to 1"):
        normalised_class_entropy(torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match="K >= 2"):
        normalised_class_entropy(torch.tensor([1.0]))


# ----------------------------------------------------------------------------- memorisation audit


def test_nearest_neighbour_distances_match_brute_force_with_chunks_and_self_exclusion():
    x = gaussian(70, 4, seed=31)
    y = gaussian(50, 4, seed=32)
    full = scipy.spatial.distance.cdist(x.numpy(), y.numpy())
    distances, indices = nearest_neighbour_distances(x, y, chunk=16)
    np.testing.assert_allclose(distances.numpy(), full.min(axis=1), rtol=1e-12)
    assert indices.tolist() == full.argmin(axis=1).tolist()

    self_full = scipy.spatial.distance.cdist(x.numpy(), x.numpy())
    np.fill_diagonal(self_full, np.inf)
    distances, indices = nearest_neighbour_distances(x, x, exclude_self=True, chunk=16)
    np.testing.assert_allclose(distances.numpy(), self_full.min(axis=1), rtol=1e-12)
    assert indices.tolist() == self_full.argmin(axis=1).tolist()
    assert bool((distances > 0).all())

    images = x.reshape(70, 1, 2, 2)  # images are flattened to one row each
    _, image_indices = nearest_neighbour_distances(images, y.reshape(50, 1, 2, 2))
    assert image_indices.tolist() == full.argmin(axis=1).tolist()


def test_nearest_neighbour_validation_messages():
    x = gaussian(10, 4, seed=33)
    with pytest.raises(ValueError, match=r"same shape per sample"):
        nearest_neighbour_distances(x, x[:, :3])
    with pytest.raises(ValueError, match="same set"):
        nearest_neighbour_distances(x, x[:5], exclude_self=True)
    with pytest.raises(ValueError, match="chunk"):
        nearest_neighbour_distances(x, x, chunk=0)
    with pytest.raises(ValueError, match=r"received shape \(10,\)"):
        nearest_neighbour_distances(x[:, 0], x[:, 0])


def audit_sets(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train, test and fresh 'generated' images (N, 1, 4, 4) in [0, 1] from one distribution."""
    g = torch.Generator().manual_seed(seed)
    train, test, fresh = (torch.rand(n, 1, 4, 4, generator=g) for n in (1000, 1000, 1000))
    return train, test, fresh


def test_audit_flags_a_memoriser():
    train, test, _ = audit_sets(seed=34)
    copied = torch.randint(0, 1000, (300,), generator=torch.Generator().manual_seed(35))
    result = memorisation_audit(train[copied], train, test, percentile=1.0, num_pairs=5)
    assert result["fraction_suspiciously_close"] == 1.0
    assert bool((result["generated_to_train"] == 0).all())  # exact copies: distance exactly 0
    assert torch.equal(train[result["generated_nearest_train_index"]], train[copied])
    assert result["median_ratio"] == 0.0
    assert result["closest_distances"].tolist() == [0.0] * 5
    gen_idx, train_idx = result["closest_generated_indices"], result["closest_train_indices"]
    assert torch.equal(train[copied][gen_idx], train[train_idx])


def test_audit_fresh_samples_look_like_the_test_set():
    train, test, fresh = audit_sets(seed=36)
    result = memorisation_audit(fresh, train, test, percentile=5.0)
    # binomial noise (1000 samples) plus the noise of the estimated threshold: sd about 0.01
    assert result["fraction_suspiciously_close"] == pytest.approx(0.05, abs=0.03)
    assert result["expected_fraction"] == 0.05
    assert result["median_ratio"] == pytest.approx(1.0, abs=0.1)
    assert result["threshold"] == pytest.approx(
        float(np.percentile(result["test_to_train"].numpy(), 5)), rel=1e-12
    )
    assert result["generated_to_train"].shape == (1000,) and result["test_to_train"].shape == (1000,)
    # half copies, half fresh: about 0.5 + 0.5 * 0.05
    half = torch.cat([train[:500], fresh[:500]])
    assert memorisation_audit(half, train, test, percentile=5.0)[
        "fraction_suspiciously_close"
    ] == pytest.approx(0.525, abs=0.03)


def test_audit_validation_and_warnings():
    train, test, fresh = audit_sets(seed=37)
    with pytest.raises(ValueError, match=r"same shape per sample.*generated \(10, 1, 2, 8\)"):
        memorisation_audit(fresh[:10].reshape(10, 1, 2, 8), train, test)
    with pytest.raises(ValueError, match="percentile"):
        memorisation_audit(fresh, train, test, percentile=0)
    with pytest.warns(RuntimeWarning, match="to_unit_range"):
        memorisation_audit(fresh[:50] * 2 - 1, train[:50], test[:200])
    with pytest.warns(RuntimeWarning, match="test samples"):
        memorisation_audit(fresh[:50], train[:50], test[:20], percentile=1.0)
    with pytest.warns(RuntimeWarning, match="leaks"):
        memorisation_audit(fresh[:50], train[:200], torch.cat([train[:150], test[:50]]), percentile=10.0)


def test_points_on_a_ball_boundary_count_as_outside_as_in_prdc():
    real = torch.tensor([[0.0], [1.0]])  # k = 1 radii: 1 and 1
    fake = torch.tensor([[2.0], [-1.0]])  # exactly on the boundaries of B(1, 1) and B(0, 1)
    assert precision_recall(real, fake, k=1)["precision"] == 0.0
    assert density_coverage(real, fake, k=1) == {"density": 0.0, "coverage": 0.0}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_a_copy_of_the_real_set_has_density_exactly_one(k):
    # each copy sits at distance 0 of its original and strictly inside the balls of the k - 1 real points
    # closer than that original's k-th neighbour: k balls per fake, density k / k = 1 ('<=' would give (k + 1) / k)
    real = gaussian(200, 8, seed=40)
    assert density_coverage(real, real.clone(), k=k) == {"density": 1.0, "coverage": 1.0}
    assert precision_recall(real, real.clone(), k=k) == {"precision": 1.0, "recall": 1.0}


@pytest.mark.parametrize("case", ["shifted", "copy", "duplicates", "collapsed"])
def test_prdc_matches_the_reference_implementation(case, capsys):
    prdc = pytest.importorskip("prdc")  # Naeem et al.'s own code (a test dependency)
    real = gaussian(300, 16, seed=41).numpy().astype(np.float32)
    fake = {
        "shifted": (gaussian(250, 16, seed=42) * 1.2 + 0.3).numpy().astype(np.float32),
        "copy": real.copy(),
        "duplicates": np.concatenate([real[:100], real[:100], gaussian(50, 16, seed=43).numpy()]).astype(np.float32),
        "collapsed": np.repeat(real[:4], 50, axis=0),
    }[case]
    k = 5
    reference = prdc.compute_prdc(real, fake, nearest_k=k)
    capsys.readouterr()  # prdc prints the set sizes
    ours = {**precision_recall(real, fake, k=k), **density_coverage(real, fake, k=k)}
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(reference[name]), abs=1e-12), name


# ----------------------------------------------------------------------------- KID and Inception Score


class _Identity(torch.nn.Module):
    """A 'feature extractor' for torchmetrics that passes precomputed features (or logits) through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_kid_matches_torchmetrics_and_a_hand_written_estimate():
    from sklearn.metrics.pairwise import polynomial_kernel
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = gaussian(120, 10, seed=50), gaussian(120, 10, seed=51, shift=0.3)
    ours = distribution.kid(real, fake)["kid"]
    # independent: scikit-learn's polynomial kernel (gamma 1/D, coef0 1, degree 3), unbiased MMD^2 by hand
    k_rr, k_ff, k_rf = (polynomial_kernel(a.numpy(), b.numpy(), degree=3, gamma=1 / 10, coef0=1)
                        for a, b in ((real, real), (fake, fake), (real, fake)))
    n = real.shape[0]
    by_hand = ((k_rr.sum() - np.trace(k_rr)) + (k_ff.sum() - np.trace(k_ff))) / (n * (n - 1)) - 2 * k_rf.mean()
    assert ours == pytest.approx(by_hand, rel=1e-10)
    metric = KernelInceptionDistance(feature=_Identity(), subsets=1, subset_size=n)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert ours == pytest.approx(float(metric.compute()[0]), rel=1e-6)


def test_kid_is_unbiased_at_small_n_where_the_frechet_distance_is_not():
    # 40 pairs of same-distribution samples, n = 30 in 8-D: mean KID ~ 0 (within its standard error),
    # while the Fréchet distance of the same pairs is clearly positive
    kids, fds = [], []
    for seed in range(40):
        a, b = gaussian(30, 8, seed=100 + seed), gaussian(30, 8, seed=200 + seed)
        kids.append(distribution.kid(a, b)["kid"])
        fds.append(frechet_distance(a, b))
    assert abs(np.mean(kids)) < 3 * np.std(kids, ddof=1) / math.sqrt(len(kids))
    assert np.mean(fds) > 10 * np.std(fds, ddof=1) / math.sqrt(len(fds))
    assert distribution.kid(gaussian(200, 8, seed=1), gaussian(200, 8, seed=2, shift=1.0))["kid"] > 0.1


def test_kid_subsets_are_seeded_and_validated():
    real, fake = gaussian(100, 4, seed=52), gaussian(80, 4, seed=53)
    first = distribution.kid(real, fake, subset_size=50, num_subsets=20, seed=3)
    assert first == distribution.kid(real, fake, subset_size=50, num_subsets=20, seed=3)
    assert first["num_subsets"] == 20 and first["sd"] > 0
    with pytest.raises(ValueError, match="larger than the sets"):
        distribution.kid(real, fake, subset_size=90)
    with pytest.raises(ValueError, match="same feature extractor"):
        distribution.kid(real, gaussian(80, 5, seed=54))


def test_inception_score_matches_torchmetrics_and_its_bounds():
    from torchmetrics.image.inception import InceptionScore

    logits = gaussian(200, 5, seed=55) * 3
    ours = distribution.inception_score(logits.softmax(dim=1))
    metric = InceptionScore(feature=_Identity(), splits=1)
    metric.update(logits)
    assert ours["is"] == pytest.approx(float(metric.compute()[0]), rel=1e-6)
    # known answers: confident and balanced over K classes -> K; one class only -> 1; uniform p(y|x) -> 1
    confident = torch.eye(4).repeat(25, 1)  # (100, 4): 25 confident images per class
    assert distribution.inception_score(confident)["is"] == pytest.approx(4.0)
    assert distribution.inception_score(torch.eye(4)[[0] * 50])["is"] == pytest.approx(1.0)
    assert distribution.inception_score(torch.full((50, 4), 0.25))["is"] == pytest.approx(1.0)
    split = distribution.inception_score(logits.softmax(dim=1), splits=4)
    assert split["sd"] > 0
    with pytest.raises(ValueError, match="softmax"):
        distribution.inception_score(logits)


# ----------------------------------------------------------------------------- the audit's baseline and its blind spots


def test_find_training_copies_separates_exact_and_near_copies():
    train, test, _ = audit_sets(seed=60)
    baseline = torch.cat([test[:200], train[:5], (train[5:8] + 0.01).clamp(0, 1)])  # 200 fresh, 5 exact, 3 near
    found = find_training_copies(baseline, train)
    assert found["exact"].nonzero().flatten().tolist() == list(range(200, 205))
    assert found["near"].nonzero().flatten().tolist() == [205, 206, 207]
    assert int(found["keep"].sum()) == 200 and not bool(found["keep"][200:].any())
    assert found["nearest_train_index"][200:205].tolist() == list(range(5))
    assert found["distances"].shape == (208,)
    assert int(find_training_copies(baseline, train, near_copy_ratio=0)["keep"].sum()) == 203  # exact ones only
    with pytest.raises(ValueError, match="near_copy_ratio"):
        find_training_copies(baseline, train, near_copy_ratio=1.5)


def test_perturbed_copies_change_what_they_say():
    images = torch.rand(6, 1, 5, 7, generator=torch.Generator().manual_seed(61)) * 0.8 + 0.1
    assert torch.allclose(perturbed_copies(images, "brightness", brightness=0.05), images + 0.05)
    assert torch.equal(perturbed_copies(images, "flip"), images.flip(-1))
    shifted = perturbed_copies(images, "shift", shift_pixels=2)
    assert torch.equal(shifted[..., 2:], images[..., :-2])
    assert torch.equal(shifted[..., 0], images[..., 0]) and torch.equal(shifted[..., 1], images[..., 0])
    noisy = perturbed_copies(images, "noise", noise_sd=0.05, seed=3)
    assert torch.equal(noisy, perturbed_copies(images, "noise", noise_sd=0.05, seed=3))
    assert float((noisy - images).std()) == pytest.approx(0.05, rel=0.3)
    assert float(perturbed_copies(torch.ones(2, 1, 3, 3), "brightness").max()) == 1.0  # clipped to [0, 1]
    with pytest.raises(ValueError, match="kind must be one of"):
        perturbed_copies(images, "rotate")
    with pytest.raises(ValueError, match="shift_pixels"):
        perturbed_copies(images, "shift", shift_pixels=7)


def test_a_pixel_audit_misses_perturbed_copies_that_a_clean_baseline_reveals():
    # smooth 'images' (sums of a few random bumps), so that a 1-px shift is a small change and a flip is not
    g = torch.Generator().manual_seed(62)
    grid = torch.linspace(-1, 1, 12)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")

    def blobs(n: int) -> torch.Tensor:
        centres, widths = torch.rand(n, 3, 2, generator=g) * 1.6 - 0.8, torch.rand(n, 3, generator=g) * 0.3 + 0.2
        bumps = torch.exp(-((xx - centres[..., 0, None, None]) ** 2 + (yy - centres[..., 1, None, None]) ** 2)
                          / widths[..., None, None] ** 2)
        return (bumps.sum(dim=1, keepdim=True) / 3).clamp(0, 1)  # (n, 1, 12, 12)

    train, baseline = blobs(600), blobs(300)
    copies = train[:200]
    exact = memorisation_audit(copies, train, baseline, percentile=5.0)["fraction_suspiciously_close"]
    flipped = memorisation_audit(perturbed_copies(copies, "flip"), train, baseline,
                                 percentile=5.0)["fraction_suspiciously_close"]
    assert exact == 1.0
    assert flipped < 0.5  # a mirrored copy is far from its original in pixel space: the audit's blind spot
    mirrored_train = torch.cat([train, train.flip(-1)])  # searching the mirror images too closes that gap
    assert memorisation_audit(perturbed_copies(copies, "flip"), mirrored_train, baseline,
                              percentile=5.0)["fraction_suspiciously_close"] == 1.0


def test_audit_reuses_a_precomputed_baseline():
    train, test, fresh = audit_sets(seed=63)
    first = memorisation_audit(fresh[:100], train, test)
    again = memorisation_audit(train[:50], train, test, test_to_train=first["test_to_train"])
    direct = memorisation_audit(train[:50], train, test)
    assert again["threshold"] == direct["threshold"]
    assert again["fraction_suspiciously_close"] == direct["fraction_suspiciously_close"] == 1.0
    with pytest.raises(ValueError, match="test_to_train has 10 distances"):
        memorisation_audit(fresh[:100], train, test, test_to_train=first["test_to_train"][:10])
