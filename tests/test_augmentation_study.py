"""Notebook 04's protocol: the fold's GAN sees only the fold's training indices; folds are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_utils.protocols.augmentation_study as study
from course_utils.checkpoint import UntrainedRunError
from course_utils.inference import generate_conditional
from course_utils.metrics.classification import Fold, LeakageError, stratified_folds
from course_utils.training import TrainConfig


def _indexed_data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels all equal their own index (so a batch says which samples it holds), 2 classes."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, 28, 28).contiguous()
    labels = (torch.arange(n) % 4 == 0).long()  # 25 % class 1
    return images, labels


def test_the_gan_receives_exactly_the_training_indices(monkeypatch):
    images, labels = _indexed_data()
    received = []

    def spy(generator, discriminator, data, config, **kwargs):
        received.append(data)
        return "trained"

    monkeypatch.setattr(study, "train_gan", spy)
    for fold in stratified_folds(labels, k=4, seed=0):
        study.train_fold_gan(images, labels, fold, num_classes=2, base_width=8,
                             config=TrainConfig(num_epochs=1, batch_size=4, latent_dim=8), progress=False)
        gan_images, gan_labels = received[-1]
        seen = gan_images[:, 0, 0, 0].long().numpy()  # the index stamped into each image
        assert np.array_equal(np.sort(seen), fold.train_indices)
        assert np.intersect1d(seen, fold.test_indices).size == 0
        assert torch.equal(gan_labels, labels[torch.from_numpy(seen)])
    assert len(received) == 4


def test_a_fold_that_leaks_is_refused():
    images, labels = _indexed_data()
    leaky = Fold(0, np.arange(0, 30), np.arange(25, 40))
    with pytest.raises(LeakageError, match="held-out indices are also training indices"):
        study.train_fold_gan(images, labels, leaky, num_classes=2, config=TrainConfig(num_epochs=1, batch_size=4))
    with pytest.raises(LeakageError):
        study.run_regimes(leaky, images, labels, images, labels, num_classes=2, positive_class=1, synthetic_ratio=1.0,
                          steps=1, batch_size=4)


def test_synthetic_labels_follow_the_class_mix():
    train_labels = torch.tensor([0] * 30 + [1] * 10)
    labels = study.synthetic_labels(train_labels, 21, 2, seed=0)
    assert torch.bincount(labels).tolist() == [16, 5]  # 15.75 and 5.25, largest remainder rounds 15.75 up
    assert torch.equal(labels, study.synthetic_labels(train_labels, 21, 2, seed=0))
    with pytest.raises(ValueError, match="count must be an integer >= 0"):
        study.synthetic_labels(train_labels, -1, 2)


def test_regime_data_sizes_and_errors():
    images, labels = _indexed_data(20)
    synthetic = torch.full((30, 1, 28, 28), 200, dtype=torch.uint8)
    data = study.regime_data(images, labels, synthetic, torch.zeros(30, dtype=torch.long), synthetic_ratio=1.5)
    assert [len(data[r][0]) for r in study.REGIMES] == [20, 20, 50, 20]
    assert data["real + classic aug"][2] is not None and data["real only"][2] is None
    assert torch.all(data["GAN only (TSTR)"][0] == 200)
    with pytest.raises(ValueError, match="need 40 synthetic images"):
        study.regime_data(images, labels, synthetic, torch.zeros(30, dtype=torch.long), synthetic_ratio=2.0)


def _one_fold(seed: int, regimes: tuple[str, ...] = ("real + classic aug", "real + GAN")):
    images, labels = _indexed_data(40)
    images = (images * 5 + (labels[:, None, None, None] * 60).to(torch.uint8)).contiguous()  # a learnable signal
    split = study.inner_split(stratified_folds(labels, k=2, seed=0)[0], labels, validation_fraction=0.3, seed=seed)
    config = TrainConfig(num_epochs=1, batch_size=8, latent_dim=8, seed=seed, snapshot_every=0, checkpoint_every=0)
    gan = study.train_fold_gan(images, labels, split.gan_fold, num_classes=2, config=config, base_width=8,
                               progress=False)
    fake_labels = study.synthetic_labels(labels[torch.from_numpy(split.fold.train_indices)], 20, 2, seed=seed)
    fakes = generate_conditional(gan.generator, fake_labels, seed=seed)
    metrics = study.run_regimes(split.fold, images, labels, fakes, fake_labels, num_classes=2, positive_class=1,
                                synthetic_ratio=1.0, steps=3, batch_size=4, stem="pooled", seed=seed, regimes=regimes,
                                validation_indices=split.validation_indices, eval_every=1, patience=2,
                                target_sensitivity=0.9, extra_eval={"test": (images[:6], labels[:6])})
    return fakes, metrics


def _without_time(results):
    return {r: {s: {k: v for k, v in m.items() if k != "seconds"} for s, m in result.metrics.items()}
            for r, result in results.items()}


def test_a_fold_is_reproducible_from_its_seeds(one_thread):
    fakes, results = _one_fold(seed=0)
    fakes_again, results_again = _one_fold(seed=0)
    fakes_other, _ = _one_fold(seed=1, regimes=())
    assert torch.equal(fakes, fakes_again)
    assert _without_time(results) == _without_time(results_again)
    assert not torch.equal(fakes, fakes_other)
    assert set(results) == {"real + classic aug", "real + GAN"}
    metrics = results["real + GAN"].metrics
    assert set(metrics) == {"held-out", "test"}
    assert set(metrics["held-out"]) == {"accuracy", "auc", "sensitivity", "specificity", "f1", "seconds", "best_step",
                                        "steps_run", "op sensitivity", "op specificity"}
    result = results["real + GAN"]
    assert result.probabilities["held-out"].shape == (20, 2) and result.probabilities["test"].shape == (6, 2)
    assert 1 <= result.best_step <= result.history["steps_run"] <= 3
    assert result.history["eval_steps"][: len(result.history["validation_auc"])] == result.history["eval_steps"]
    # the stored probabilities give the stored metrics
    from course_utils.metrics.classification import classification_metrics
    again = classification_metrics(_indexed_data(40)[1][:6], result.probabilities["test"], 1)
    assert again["auc"] == metrics["test"]["auc"]


def test_inner_split_is_stratified_nested_and_never_touches_the_held_out_fold():
    labels = torch.tensor([1] * 30 + [0] * 90)
    fold = stratified_folds(labels, k=4, seed=0)[1]
    splits = {f: study.inner_split(fold, labels, fraction=f, validation_fraction=0.2, seed=5) for f in (0.25, 0.5, 1)}
    for f, split in splits.items():
        train, val = split.fold.train_indices, split.validation_indices
        assert np.array_equal(split.fold.test_indices, fold.test_indices)
        assert np.intersect1d(train, val).size == 0 and np.intersect1d(np.union1d(train, val), fold.test_indices).size == 0
        assert set(np.union1d(train, val)) <= set(fold.train_indices)
        for part in (train, val):
            assert {0, 1} <= set(labels[part].tolist())  # every class on both sides
        share = labels[train].float().mean()
        assert abs(share - 0.25) < 0.06  # the class mix of the pool
        assert len(train) + len(val) == pytest.approx(f * len(fold.train_indices), abs=2)
        gan_fold = split.gan_fold  # what the GAN may see: the training indices only
        assert np.array_equal(gan_fold.train_indices, train)
        assert set(gan_fold.test_indices) == set(val) | set(fold.test_indices)
    assert set(splits[0.25].fold.train_indices) <= set(splits[0.5].fold.train_indices) <= set(splits[1].fold.train_indices)
    assert set(splits[0.25].validation_indices) <= set(splits[1].validation_indices)
    again = study.inner_split(fold, labels, fraction=0.5, validation_fraction=0.2, seed=5)
    assert np.array_equal(again.fold.train_indices, splits[0.5].fold.train_indices)
    with pytest.raises(ValueError, match="too few"):
        study.inner_split(fold, torch.tensor([1] * 2 + [0] * 118), validation_fraction=0.2)
    with pytest.raises(ValueError, match="fraction"):
        study.inner_split(fold, labels, fraction=0.0)


def test_the_inner_validation_set_must_be_its_own_images():
    images, labels = _indexed_data()
    fold = stratified_folds(labels, k=4, seed=0)[0]
    for overlap in (fold.train_indices[:3], fold.test_indices[:3]):
        with pytest.raises(LeakageError, match="inner-validation indices"):
            study.run_regimes(fold, images, labels, images, labels, num_classes=2, positive_class=1,
                              synthetic_ratio=1.0, steps=1, batch_size=4, validation_indices=overlap)


def test_bootstrap_over_fold_models_is_paired_across_regimes():
    labels = torch.tensor([0, 1] * 10)
    good = np.stack([1 - labels.numpy() * 0.8 - 0.1, labels.numpy() * 0.8 + 0.1], 1)  # (20, 2): perfect ranking
    noise = np.random.default_rng(0).random((20, 1))
    bad = np.concatenate([1 - noise, noise], 1)

    def result(p):
        return study.RegimeResult({}, {"test": p}, {})

    fold_results = [{"a": result(good), "b": result(bad)}, {"a": result(good), "b": result(good)}]
    draws = study.bootstrap_regimes(fold_results, "test", labels, positive_class=1, resamples=100, seed=1)
    assert set(draws) == {"a", "b"} and draws["a"].shape == (100,)
    assert np.all(draws["a"][np.isfinite(draws["a"])] == 1.0)
    assert np.all(draws["a"] - draws["b"] >= -1e-12)  # same resamples: the better regime never loses


def test_regime_results_are_cached_checked_and_refused_under_require_trained(tmp_path, monkeypatch, capsys,
                                                                             one_thread):
    images, labels = _indexed_data(40)
    images = (images * 5 + (labels[:, None, None, None] * 60).to(torch.uint8)).contiguous()
    split = study.inner_split(stratified_folds(labels, k=2, seed=0)[0], labels, validation_fraction=0.3, seed=0)
    fakes, fake_labels = images[:20], labels[:20]
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    cache = tmp_path / "04_classifiers_fold0_smoke"

    def run(steps: int = 3, real=images, key="generator-a-seed0", retrain=False):
        return study.run_regimes(split.fold, real, labels, fakes, fake_labels, num_classes=2, positive_class=1,
                                 synthetic_ratio=1.0, steps=steps, batch_size=4, stem="pooled", seed=0,
                                 regimes=("real only", "real + GAN"), validation_indices=split.validation_indices,
                                 eval_every=1, patience=2, target_sensitivity=0.9, cache_dir=cache,
                                 synthetic_key=key, retrain=retrain)

    first = run()
    assert sorted(p.name for p in cache.iterdir()) == ["real_gan.pt", "real_only.pt"]
    capsys.readouterr()
    retrained = run(retrain=True)  # retrain=True trains again and overwrites the cache, with the same numbers
    assert "loaded the cached results" not in capsys.readouterr().out
    assert retrained["real + GAN"].metrics["held-out"]["auc"] == first["real + GAN"].metrics["held-out"]["auc"]
    assert retrained["real + GAN"].metrics["held-out"]["seconds"] != first["real + GAN"].metrics["held-out"]["seconds"]
    trained = []
    monkeypatch.setattr(study, "train_classifier", lambda *a, **k: trained.append(1) or pytest.fail("retrained"))
    again = run()  # loaded: nothing trains, the same numbers and probabilities
    assert "loaded the cached results of real only, real + GAN" in capsys.readouterr().out
    assert not trained and again["real + GAN"].metrics == retrained["real + GAN"].metrics  # its seconds too
    assert np.array_equal(again["real only"].probabilities["held-out"], first["real only"].probabilities["held-out"])
    assert again["real only"].best_step == first["real only"].best_step
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")  # other settings or other real images would train: refused
    for changed in ({"steps": 4}, {"real": images.flip(0).contiguous()}, {"key": "generator-b-seed0"}):
        with pytest.raises(UntrainedRunError, match="would be trained now"):
            run(**changed)


def test_generator_key_names_the_weights_and_the_seed():
    torch.manual_seed(0)
    generator = torch.nn.Linear(3, 2)
    key = study.generator_key(generator, 0)
    assert study.generator_key(generator, 0) == key and study.generator_key(generator, 1) != key
    with torch.no_grad():
        generator.weight[0, 0] += 1e-6  # one weight a little different: another synthetic set
    assert study.generator_key(generator, 0) != key
