"""Notebook 10's protocol: conditional denoisers, DenoiserSteps in train_gan (exact resume, EMA, timing kept),
sampling every generator, the TSTR probe and the scoring of runs against a floor."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.config import TrainConfig, apply_step_cap, settings_for
from course_utils.models.denoiser import TimeConditionedUNet, with_labels
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.protocols import generator_comparison as gc
from course_utils.protocols.objective_comparison import Yardstick
from course_utils.training import DenoiserSteps, train_gan
from course_utils.training.steps import sample_denoiser
from course_utils.training.supervised import NoCritic


def labelled_images(count: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` uint8 images (count, 1, 28, 28): class 1 bright, class 0 dark, plus noise; labels (count,)."""
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    base = torch.where(labels.view(-1, 1, 1, 1) == 1, 180.0, 60.0)
    images = (base + 30 * torch.randn(count, 1, 28, 28, generator=rng)).clamp(0, 255).to(torch.uint8)
    return images, labels


CONFIG = TrainConfig(num_epochs=2, batch_size=8, lr_g=5e-4, lr_d=5e-4, betas=(0.9, 0.999), snapshot_every=0,
                     num_samples=4)
SIZES = dict(num_classes=2, gan_width=4, denoiser_width=8)


def test_a_conditional_denoiser_uses_its_labels_and_refuses_to_run_without_them() -> None:
    model = TimeConditionedUNet(28, 1, width=8, num_classes=2).eval()
    x, time = torch.randn(4, 1, 28, 28), torch.rand(4)
    with torch.no_grad():
        nn_init = model.label_embedding.weight.clone()
        model.label_embedding.weight.copy_(torch.randn_like(nn_init))
        zeros, ones = model(x, time, torch.zeros(4, dtype=torch.long)), model(x, time, torch.ones(4, dtype=torch.long))
        bound = with_labels(model, torch.ones(4, dtype=torch.long))(x, time)
    assert not torch.allclose(zeros, ones) and torch.equal(bound, ones)
    with pytest.raises(ValueError, match="class-conditional"):
        model(x, time)
    with pytest.raises(ValueError, match="unconditional"):
        TimeConditionedUNet(28, 1, width=8)(x, time, torch.zeros(4, dtype=torch.long))
    assert with_labels(model, None) is model


@pytest.mark.parametrize("objective", ["diffusion", "flow matching"])
def test_denoiser_steps_resume_exactly_keep_the_ema_and_remember_the_training_time(objective, tmp_path) -> None:
    images, labels = labelled_images()

    def run(epochs: int, folder):
        torch.manual_seed(0)
        model = TimeConditionedUNet(28, 1, width=8, num_classes=2)
        steps = DenoiserSteps(objective, (1, 28, 28), num_classes=2, ema_decay=0.9, snapshot_steps=2)
        config = TrainConfig(**{**CONFIG.__dict__, "num_epochs": epochs})
        result = train_gan(model, NoCritic(), (images, labels), config, steps=steps, progress=False,
                           checkpoint_dir=folder)
        return model, steps, result

    straight_model, straight_steps, straight = run(2, tmp_path / "straight")
    run(1, tmp_path / "resumed")
    resumed_model, resumed_steps, resumed = run(2, tmp_path / "resumed")  # resumes after epoch 1
    for a, b in zip(straight_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight_steps.ema.parameters(), resumed_steps.ema.parameters(), strict=True):
        assert torch.equal(a, b)
    # the EMA is an average: it moved away from the initial weights, but not as far as the trained ones
    assert not torch.equal(next(straight_steps.ema.parameters()), next(straight_model.parameters()))
    assert straight.step_history["loss"] == resumed.step_history["loss"]
    # a run loaded from its finished checkpoint still knows how long it trained
    _, _, loaded = run(2, tmp_path / "straight")
    assert loaded.timing["images"] == 0 and loaded.timing["seconds_total"] == pytest.approx(
        straight.timing["seconds_total"]) and straight.timing["seconds_total"] > 0


def test_denoiser_steps_refuse_bad_settings_and_unlabelled_batches() -> None:
    with pytest.raises(ValueError, match="objective"):
        DenoiserSteps("score matching", (1, 28, 28))
    with pytest.raises(ValueError, match="image_shape"):
        DenoiserSteps("diffusion", (28, 28))
    with pytest.raises(ValueError, match="ema_decay"):
        DenoiserSteps("diffusion", (1, 28, 28), ema_decay=1.0)
    images, _ = labelled_images(8)
    with pytest.raises(ValueError, match="labelled batches"):
        train_gan(TimeConditionedUNet(28, 1, width=8, num_classes=2), NoCritic(), images, CONFIG,
                  steps=DenoiserSteps("diffusion", (1, 28, 28), num_classes=2), progress=False)


def test_sample_denoiser_gives_images_in_range_with_one_evaluation_per_step() -> None:
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = TimeConditionedUNet(28, 1, width=8)

        def forward(self, x, time):
            calls.append(1)
            return self.model(x, time)

    noise = torch.randn(3, 1, 28, 28)
    schedule = DenoiserSteps("diffusion", (1, 28, 28)).alphas_cumprod
    for objective in ("diffusion", "flow matching"):
        calls.clear()
        x = sample_denoiser(objective, Counting(), noise, 5, schedule)
        assert x.shape == noise.shape and x.min() >= -1 and x.max() <= 1 and len(calls) == 5
    with pytest.raises(ValueError, match="alphas_cumprod"):
        sample_denoiser("diffusion", Counting(), noise, 2)


def test_every_generator_trains_loads_and_samples_the_same_images(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    images, labels = labelled_images()
    for kind in gc.GENERATORS:
        first = gc.train_generator(kind, 1, images, labels, CONFIG, name="toy28", profile="smoke", log=False,
                                   **SIZES)
        again = gc.train_generator(kind, 1, images, labels, CONFIG, name="toy28", profile="smoke", log=False,
                                   **SIZES)
        assert (tmp_path / gc.run_name("toy28", kind, 1, "smoke", CONFIG.num_epochs)).is_dir()
        assert again["result"].timing["images"] == 0  # loaded, not trained
        assert first["optimisation_steps"] == again["optimisation_steps"] == 2 * len(images) // 8
        assert again["seconds"] == pytest.approx(first["seconds"]) and first["seconds"] > 0
        assert first["parameters"] == sum(p.numel() for p in first["model"].parameters()) > 0
        sampled = gc.generate(again, labels[:5], seed=3, sample_steps=2)
        assert sampled.dtype == torch.uint8 and sampled.shape == (5, 1, 28, 28)
        assert torch.equal(sampled, gc.generate(first, labels[:5], seed=3, sample_steps=2))
        assert gc.network_evaluations(kind, 7) == (1 if kind == "GAN" else 7)
        assert gc.sampling_milliseconds(first, 2, count=4, repeats=1) > 0
    with pytest.raises(ValueError, match="unknown generator"):
        gc.build_generator("VAE", 0, num_classes=2, channels=1, size=28, gan_width=4, denoiser_width=8)


def test_the_tstr_probe_separates_separable_classes_and_chooses_c_on_validation() -> None:
    images, labels = labelled_images(64)
    test_images, test_labels = labelled_images(64, seed=1)
    assert gc.tstr_auc(images, labels, test_images, test_labels, c=0.1) == pytest.approx(1.0)
    swapped = gc.tstr_auc(images, 1 - labels, test_images, test_labels, c=0.1)  # wrong labels: anti-correlated
    assert swapped == pytest.approx(0.0)
    assert math.isnan(gc.tstr_auc(images, torch.zeros_like(labels), test_images, test_labels, c=0.1))
    assert gc.choose_probe_c(images, labels, test_images, test_labels) in gc.PROBE_C_GRID


def test_score_generators_scores_every_run_and_the_floor_with_tstr(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    images, labels = labelled_images(48)
    runs = {kind: {0: gc.train_generator(kind, 0, images, labels, CONFIG, name="toy28", profile="smoke",
                                         log=False, **SIZES)} for kind in ("GAN", "flow matching")}
    classifier = DomainClassifier(channels=1, width=4, feature_dim=8).eval()
    train_unit = images.float() / 255
    yardstick = Yardstick(classifier, train_unit, train_unit[:16], k=3)
    scores = gc.score_generators(runs, yardstick, images, labels, images[16:], labels[16:], images, labels,
                                 count=16, sample_steps=2, probe_c=0.1)
    assert set(scores) == {"held-out real", "GAN", "flow matching"}
    for per_seed in scores.values():
        assert set(per_seed[0]) >= {"domain-FD", "KID", "precision", "recall", "memorised", "TSTR AUC"}
    assert scores["held-out real"][0]["TSTR AUC"] == pytest.approx(1.0)  # real images of separable classes


def test_the_settings_of_every_profile_and_the_step_cap() -> None:
    for profile in ("smoke", "cpu", "gpu"):
        settings = settings_for("10_gan_vs_diffusion_vs_flow", profile)
        assert settings.gan.betas == (0.5, 0.999) and settings.denoiser.betas == (0.9, 0.999)
        assert len(settings.seeds) >= (3 if profile != "smoke" else 2)
    capped = apply_step_cap(settings_for("10_gan_vs_diffusion_vs_flow", "gpu"), 2)
    assert capped.denoiser.max_steps == 2 and capped.step_sweep == (1, 2) and len(capped.seeds) == 2
    assert capped.sample_steps == 2 and capped.eval_samples == capped.sweep_samples == 96


@pytest.mark.parametrize("kind", ["GAN", "flow matching"])
def test_the_memory_estimate_leaves_the_run_training_its_own_networks(kind, tmp_path, monkeypatch) -> None:
    """COURSE_MEMORY_ESTIMATE=1 times one step on copies; the run must still train (and save) its own networks."""
    images, labels = labelled_images(16)

    def trained(estimate: bool) -> list[torch.Tensor]:
        monkeypatch.setenv("COURSE_MEMORY_ESTIMATE", "1" if estimate else "0")
        monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / str(estimate)))
        run = gc.train_generator(kind, 0, images, labels, CONFIG, name="toy28", profile="smoke", log=False,
                                 **SIZES)
        return [p.detach().clone() for p in run["model"].parameters()]

    untouched = [p.detach().clone() for p in gc.build_generator(
        kind, 0, num_classes=2, channels=1, size=28, gan_width=4, denoiser_width=8)[0].parameters()]
    with_estimate, without = trained(True), trained(False)
    assert all(torch.equal(a, b) for a, b in zip(with_estimate, without, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(with_estimate, untouched, strict=True))


def test_scoring_without_a_test_set_has_no_tstr(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    images, labels = labelled_images(48)
    runs = {"GAN": {0: gc.train_generator("GAN", 0, images, labels, CONFIG, name="toy28", profile="smoke",
                                          log=False, **SIZES)}}
    classifier = DomainClassifier(channels=1, width=4, feature_dim=8).eval()
    yardstick = Yardstick(classifier, images.float() / 255, images[:16].float() / 255, k=3)
    scores = gc.score_generators(runs, yardstick, images, labels, images[16:], labels[16:], None, None,
                                 count=16, sample_steps=2)
    assert all("TSTR AUC" not in per_seed[0] for per_seed in scores.values())


def test_the_probe_handles_a_single_class_on_either_side() -> None:
    images, labels = labelled_images(32)
    one_class = torch.zeros_like(labels)
    assert gc.choose_probe_c(images, one_class, images, labels) == gc.PROBE_C_GRID[len(gc.PROBE_C_GRID) // 2]
    assert gc.choose_probe_c(images, labels, images, one_class) == gc.PROBE_C_GRID[len(gc.PROBE_C_GRID) // 2]
    assert math.isnan(gc.tstr_auc(images, labels, images, one_class, c=0.1))


def test_ddim_with_clipped_eps_rederives_the_noise_from_the_clipped_clean_image() -> None:
    alpha_bar = DenoiserSteps("diffusion", (1, 28, 28)).alphas_cumprod
    from course_utils.training.diffusion import ddim_step

    x_t, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    small = 0.01 * eps  # x̂_0 stays inside [-1, 1] at t = 10: both variants agree
    x_small = alpha_bar[10].sqrt() * 0.5 * torch.ones_like(x_t) + (1 - alpha_bar[10]).sqrt() * small
    assert torch.allclose(ddim_step(small, 10, 5, x_small, alpha_bar),
                          ddim_step(small, 10, 5, x_small, alpha_bar, clipped_eps=True), atol=1e-6)
    t, t_prev = 999, 499  # ᾱ_999 ≈ 0: x̂_0 is clipped, and ε̂ is re-derived from it
    x0 = ((x_t - (1 - alpha_bar[t]).sqrt() * eps) / alpha_bar[t].sqrt()).clamp(-1, 1)
    eps_clipped = (x_t - alpha_bar[t].sqrt() * x0) / (1 - alpha_bar[t]).sqrt()
    expected = alpha_bar[t_prev].sqrt() * x0 + (1 - alpha_bar[t_prev]).sqrt() * eps_clipped
    assert torch.allclose(ddim_step(eps, t, t_prev, x_t, alpha_bar, clipped_eps=True), expected, atol=1e-5)


def test_the_ema_warms_up_so_the_initial_weights_fade_fast() -> None:
    images, labels = labelled_images(16)
    torch.manual_seed(0)
    model = TimeConditionedUNet(28, 1, width=8, num_classes=2)
    initial = next(model.parameters()).detach().clone()
    steps = DenoiserSteps("flow matching", (1, 28, 28), num_classes=2, ema_decay=0.999)
    config = TrainConfig(**{**CONFIG.__dict__, "num_epochs": 1})  # 2 steps of 8
    train_gan(model, NoCritic(), (images, labels), config, steps=steps, progress=False)
    # without the warm-up a 0.999 EMA would still be 99.8 % the initial weights after 2 updates
    moved = (next(steps.ema.parameters()) - initial).norm() / (next(model.parameters()) - initial).norm()
    assert steps.updates == 2 and moved > 0.5
