"""Notebook 08/09's protocol: each objective's recipe, runs that resume from their checkpoints, scoring."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from course_utils.config import settings_for
from course_utils.losses import d_loss_hinge, d_loss_minimax, d_loss_wasserstein
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.protocols import objective_comparison as oc
from course_utils.training import DCGANSteps
from course_utils.training.steps import RelativisticSteps


@pytest.fixture()
def settings():
    """Notebook 08's smoke settings with tiny runs: 1 epoch, batch 8."""
    smoke = settings_for("08_stabilizing_gans", "smoke")
    return replace(smoke, train=replace(smoke.train, num_epochs=1, batch_size=8),
                   wgan=replace(smoke.wgan, num_epochs=1, batch_size=8), seeds=(0, 1), snapshot_samples=4)


@pytest.fixture()
def images() -> torch.Tensor:
    """24 random uint8 images (24, 1, 28, 28)."""
    return torch.randint(0, 256, (24, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


SIZES = dict(size=28, width=4, batch=8, epochs=1, snapshots=4)


def test_each_objective_gets_its_own_loss_critic_and_learning_rates(settings) -> None:
    built = {o: oc.build_run(o, 0, settings, channels=1, **SIZES) for o in oc.OBJECTIVES}
    non_saturating, hinge, wgan, rpgan = (built[o] for o in oc.OBJECTIVES)
    assert isinstance(non_saturating[2], DCGANSteps) and non_saturating[2].d_loss is d_loss_minimax
    assert hinge[2].d_loss is d_loss_hinge and wgan[2].d_loss is d_loss_wasserstein
    assert wgan[2].gp_weight == settings.gp_weight
    assert isinstance(rpgan[2], RelativisticSteps) and rpgan[2].gamma == settings.r3gan_gamma
    # batch norm only in the non-saturating discriminator; spectral norm only in the hinge one
    has = lambda model, kind: any(isinstance(m, kind) for m in model.modules())  # noqa: E731
    assert has(non_saturating[1], nn.BatchNorm2d) and not has(wgan[1], nn.BatchNorm2d)
    assert any(hasattr(m, "parametrizations") for m in hinge[1].modules())
    assert not any(hasattr(m, "parametrizations") for m in rpgan[1].modules())
    # TTUR for WGAN-GP (the critic 4x faster, betas (0, 0.9)); DCGAN's Adam for the others
    assert (wgan[3].lr_g, wgan[3].lr_d, wgan[3].betas) == (settings.wgan.lr_g, settings.wgan.lr_d, (0.0, 0.9))
    assert (hinge[3].lr_g, hinge[3].betas) == (settings.train.lr_g, settings.train.betas)
    assert all(b[3].num_epochs == 1 and b[3].batch_size == 8 and b[3].seed == 0 for b in built.values())


def test_the_seed_fixes_the_initial_weights_and_lr_factor_scales_both_rates(settings) -> None:
    first = oc.build_run("hinge + SN", 3, settings, channels=1, **SIZES)
    again = oc.build_run("hinge + SN", 3, settings, channels=1, **SIZES)
    other = oc.build_run("hinge + SN", 4, settings, channels=1, **SIZES)
    weights = lambda built: torch.cat([p.detach().flatten() for p in built[0].parameters()])  # noqa: E731
    assert torch.equal(weights(first), weights(again)) and not torch.equal(weights(first), weights(other))
    stressed = oc.build_run("WGAN-GP + TTUR", 0, settings, channels=1, lr_factor=10.0, **SIZES)[3]
    assert math.isclose(stressed.lr_g, 10 * settings.wgan.lr_g) and math.isclose(stressed.lr_d,
                                                                                 10 * settings.wgan.lr_d)


def test_unknown_objective_and_bad_factor_are_refused(settings) -> None:
    with pytest.raises(ValueError, match="unknown objective 'lsgan'"):
        oc.build_run("lsgan", 0, settings, channels=1, **SIZES)
    with pytest.raises(ValueError, match="lr_factor must be > 0"):
        oc.build_run("hinge + SN", 0, settings, channels=1, lr_factor=0.0, **SIZES)


def test_a_second_call_loads_the_same_run_instead_of_training(settings, images, tmp_path, monkeypatch,
                                                              capsys) -> None:
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    run = oc.train_run("RpGAN + R1 + R2", 1, images, "random28", settings, profile="smoke", **SIZES)
    assert not math.isnan(run["seconds_per_epoch"]) and run["diverged"] is None
    assert (tmp_path / oc.run_name("random28", "RpGAN + R1 + R2", 1, "smoke")).is_dir()
    capsys.readouterr()
    loaded = oc.train_run("RpGAN + R1 + R2", 1, images, "random28", settings, profile="smoke", **SIZES)
    assert "loaded from its checkpoint" in capsys.readouterr().out
    assert math.isnan(loaded["seconds_per_epoch"]) and loaded["diverged"] is None
    assert torch.equal(oc.generate_images(run["generator"], 6, 5), oc.generate_images(loaded["generator"], 6, 5))


def test_the_comparison_runs_every_objective_and_seed_at_the_settings_sizes(settings, images,
                                                                           monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(oc, "train_run", lambda *args, **kwargs: calls.append((args, kwargs)) or "run")
    runs = oc.train_objective_runs(settings, images, "random28", profile="smoke")
    assert {o: set(r) for o, r in runs.items()} == {o: set(settings.seeds) for o in oc.OBJECTIVES}
    assert len(calls) == len(oc.OBJECTIVES) * len(settings.seeds)
    kwargs = calls[0][1]
    assert (kwargs["size"], kwargs["width"], kwargs["batch"], kwargs["epochs"]) == (
        settings.image_size, settings.width, settings.train.batch_size, settings.train.num_epochs)
    small = oc.train_small_data_runs(settings, images, "small28", profile="smoke")
    assert set(small) == set(oc.SMALL_VARIANTS)
    augments = [c[1]["augment"] for c in calls[len(oc.OBJECTIVES) * len(settings.seeds):]]
    assert sum(a is None for a in augments) == sum(a is not None for a in augments) == len(settings.small_seeds)


def test_a_divergence_is_recorded_not_raised(settings, images, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    run = oc.train_run("WGAN-GP + TTUR", 0, images, "diverge28", settings, profile="smoke", log=False,
                       lr_factor=1e30, **SIZES)
    assert run["diverged"] is not None and "epoch" in run["diverged"]


def _features() -> DomainClassifier:
    """An untrained domain classifier with fixed weights: a random but fixed feature map."""
    torch.manual_seed(0)
    return DomainClassifier(channels=1, width=4, feature_dim=8)


def test_the_yardstick_sees_copies_and_a_shifted_distribution(images) -> None:
    real = torch.randint(0, 256, (80, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    train, baseline = real[:40], real[40:].float() / 255
    yardstick = oc.Yardstick(_features(), train.float() / 255, baseline, k=3)
    copies = yardstick.score(train[:20], train)
    dark = yardstick.score((train[:20] // 4), train)
    assert copies["memorised"] == 1.0 and dark["memorised"] == 0.0
    assert dark["domain-FD"] > 100 * copies["domain-FD"] and dark["precision"] < copies["precision"]
    assert "pixel-PCA FD" not in copies


def test_cached_scores_load_the_same_numbers_and_score_other_weights_again(settings, tmp_path, monkeypatch) -> None:
    runs = {o: {0: oc.ObjectiveRun(result=None, generator=oc.build_run(o, 0, settings, channels=1, **SIZES)[0].eval(),
                                   diverged=None, seconds_per_epoch=math.nan)}
            for o in ("non-saturating", "hinge + SN")}
    real = torch.randint(0, 256, (60, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    pca = PCA(n_components=4, random_state=0).fit(real[:30].flatten(1).float().numpy() / 255)
    yardstick = oc.Yardstick(_features(), real[:30].float() / 255, real[30:].float() / 255, k=3, pca=pca)
    path = tmp_path / "08_scores_smoke" / "scores.pt"
    scores, failures = oc.cached_objective_scores(runs, yardstick, real[:30], real[30:], 12, path)
    direct, direct_failures = oc.score_objective_runs(runs, yardstick, real[:30], real[30:], count=12)
    assert failures == direct_failures and set(scores) == set(direct)
    for name, per_seed in direct.items():
        assert scores[name][0] == pytest.approx({m: float(v) for m, v in per_seed[0].items()}, nan_ok=True)

    def must_not_score(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr(oc, "extract_features", must_not_score)  # (not part of the key, unlike the code digested)
    loaded = oc.cached_objective_scores(runs, yardstick, real[:30], real[30:], 12, path)[0]
    for name, per_seed in scores.items():
        assert loaded[name][0] == pytest.approx(per_seed[0], nan_ok=True)
    assert "pixel-PCA FD" in loaded["hinge + SN"][0]
    with pytest.raises(AssertionError, match="scored again"):  # another count: scored again
        oc.cached_objective_scores(runs, yardstick, real[:30], real[30:], 10, path)
    with torch.no_grad():
        next(runs["hinge + SN"][0]["generator"].parameters()).add_(0.01)  # other weights: scored again
    with pytest.raises(AssertionError, match="scored again"):
        oc.cached_objective_scores(runs, yardstick, real[:30], real[30:], 12, path)

def test_scores_summaries_and_ranking(settings) -> None:
    # untrained generators stand in for runs (scoring does not care how a generator was made)
    runs = {o: {0: oc.ObjectiveRun(result=None, generator=oc.build_run(o, 0, settings, channels=1, **SIZES)[0].eval(),
                                   diverged=None, seconds_per_epoch=math.nan)}
            for o in ("non-saturating", "hinge + SN")}
    real = torch.randint(0, 256, (60, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    yardstick = oc.Yardstick(_features(), real[:30].float() / 255, real[30:].float() / 255, k=3)
    scores, failures = oc.score_objective_runs(runs, yardstick, real[:30], real[30:], count=12)
    assert set(scores) == {"held-out real", "non-saturating", "hinge + SN"} and set(scores["hinge + SN"]) == {0}
    summary = oc.summarise(scores)
    assert math.isnan(summary["hinge + SN"]["domain-FD"][1])  # one seed: no sd
    failures["hinge + SN"].append("seed 1: diverged")
    assert oc.rank_objectives(summary, failures)[0] == "non-saturating"
    assert oc.mean_sd([1.0, 3.0, math.nan]) == (2.0, pytest.approx(math.sqrt(2)))
    assert all(math.isnan(v) for v in oc.mean_sd([]))
