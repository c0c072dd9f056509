"""Profiles (`smoke`, `cpu`, `gpu`) and per-notebook run settings as frozen dataclasses.

`COURSE_PROFILE` picks the profile; unset means `gpu` when CUDA is available, else `cpu`. Asking for `gpu`
on a machine where torch sees no CUDA GPU still gives `gpu`, with a warning (once per process): its settings
would run for hours on the CPU.
A notebook's Configuration cell calls `settings_for("<notebook stem>")` and reads nothing else.

Every `train_gan` run's settings are a `TrainConfig`, and every settings class uses one
vocabulary: `num_epochs`, `batch_size`, `lr_g`, `lr_d`, `betas`, `latent_dim` (inside a `TrainConfig`), `width`
(channels of a network's first or last stage), `num_steps` (optimisation steps where a run is not in epochs).
A notebook with several runs has one `TrainConfig` per run (e.g. 05's `pretrain` and `srgan`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass, replace
from typing import Any, Literal, overload

from course_utils.checks import require_int

PROFILE_ENV = "COURSE_PROFILE"
STEP_CAP_ENV = "COURSE_STEP_CAP"  # e.g. 2: every training run of the profile stops after 2 steps (checks only)
AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
PROFILES: tuple[str, ...] = ("smoke", "cpu", "gpu")
PROFILE_DESCRIPTIONS: dict[str, str] = {
    "smoke": "seconds per notebook on a 2-core CPU: tiny subsets, one or two epochs (what CI runs)",
    "cpu": "a laptop without a GPU: minutes per notebook, 28 px models trained to convergence",
    "gpu": "a Colab or workstation GPU: 64/128 px images, full training, the headline numbers",
}


class ProfileError(ValueError):
    """An unknown profile or notebook name was asked for."""


def _cuda_available() -> bool:
    """True when torch sees a CUDA device (imported lazily so config stays light)."""
    import torch

    return torch.cuda.is_available()


_gpu_warning_shown = False  # warn_if_gpu_without_cuda speaks once per process


def warn_if_gpu_without_cuda(profile: str, asked_by: str = f"{PROFILE_ENV}=gpu", stacklevel: int = 2) -> None:
    """Warn (once per process) when the `gpu` profile was asked for (`asked_by`) but torch sees no CUDA GPU."""
    global _gpu_warning_shown
    if profile != "gpu" or _gpu_warning_shown or _cuda_available():
        return
    _gpu_warning_shown = True
    warnings.warn(
        f"The gpu profile was asked for ({asked_by}), but torch sees no CUDA GPU: its settings "
        "(64/128 px images, full-length training) will run on the CPU and take hours. "
        f"On this machine use the cpu profile (`{PROFILE_ENV}=cpu` or `--profile cpu`: minutes per notebook) "
        "or smoke (seconds), or check that a CUDA build of torch and the GPU driver are installed.",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def active_profile() -> str:
    """The profile in force: `COURSE_PROFILE` if set, else `gpu` with CUDA, else `cpu`.

    An explicit `gpu` without CUDA is kept (the learner asked for it) but warned about once per process.
    """
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if not value:
        return "gpu" if _cuda_available() else "cpu"
    if value not in PROFILES:
        raise ProfileError(
            f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a course profile. "
            f"Use one of {', '.join(PROFILES)} (e.g. `export {PROFILE_ENV}=cpu`), or unset it to pick "
            "`gpu` when CUDA is available and `cpu` otherwise."
        )
    warn_if_gpu_without_cuda(value)
    return value


# ----------------------------------------------------------------------------- training settings


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one `train_gan` run (introduced in notebook 02). Lengths are in epochs unless named steps."""

    num_epochs: int = 20
    batch_size: int = 128
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam (beta1, beta2); DCGAN's low beta1 steadies training
    latent_dim: int = 100
    seed: int = 0  # batch order, training noise and fixed noise (model initialisation is yours to seed)
    checkpoint_every: int = 1  # epochs between checkpoints; 0: only at the end and on interrupt
    snapshot_every: int = 1  # epochs between fixed-noise sample grids; 0: only before training and at the end
    # (snapshots live in the checkpoint: 64 RGB 128 px images are 3 MB each, so space them out for long runs)
    log_every: int = 50  # steps between GPU -> CPU copies of the logged values (and NaN checks)
    num_samples: int = 64  # images in each snapshot
    amp: str = "auto"  # 'auto' | 'off' | 'bf16' | 'fp16' (mixed precision; 'auto' uses it on CUDA only)
    channels_last: bool | None = None  # channels-last memory; None: on CUDA and CPU (3-19 % faster there), not MPS
    compile: bool = False  # torch.compile the generator and discriminator for the training steps
    max_steps: int | None = None  # at most this many steps per epoch (the first max_steps x batch_size samples)

    def __post_init__(self) -> None:
        """Reject settings that cannot work, with the reason."""
        for name in ("num_epochs", "batch_size", "latent_dim", "log_every", "num_samples"):
            require_int(getattr(self, name), name, minimum=1)
        for name in ("checkpoint_every", "snapshot_every"):
            require_int(getattr(self, name), name, minimum=0)
        require_int(self.seed, "seed", minimum=0)
        if self.max_steps is not None:
            require_int(self.max_steps, "max_steps", minimum=1)
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number such as 2e-4; got {value!r}.")
        betas = self.betas
        if not (isinstance(betas, tuple | list) and len(betas) == 2 and all(isinstance(b, int | float) for b in betas)
                and all(0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), e.g. (0.5, 0.999); got {betas!r}.")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        if self.amp not in AMP_MODES:
            raise ValueError(
                f"amp must be one of {', '.join(repr(m) for m in AMP_MODES)}; got {self.amp!r}. 'auto' uses "
                "bf16 (or fp16) mixed precision on CUDA and full float32 elsewhere; 'off' always uses float32."
            )




@dataclass(frozen=True)
class DomainClassifierSettings:
    """The domain classifier of notebook 03 (the feature network of the GAN metrics; cached and shared)."""

    num_epochs: int
    train_fraction: float = 1.0  # share of the training split it learns from
    width: int = 16
    feature_dim: int = 64


@dataclass(frozen=True)
class ResNetSettings:
    """Notebook 04's ResNet-18: the same step cap and early-stopping rule in every training regime."""

    stem: str  # 'medmnist' (the MedMNIST v2 28 px ResNet-18) or 'pooled' (max-pool kept: 4x cheaper)
    num_steps: int  # the cap: no regime trains longer (the cosine schedule spans it)
    batch_size: int
    lr: float = 1e-3  # Adam, as MedMNIST v2's benchmark
    eval_every: int = 10  # steps between inner-validation AUC evaluations
    patience: int | None = 5  # evaluations without a better validation AUC before stopping (None: run to the cap)
    validation_fraction: float = 0.2  # share of each fold's real training part held out for early stopping


# ----------------------------------------------------------------------------- one class per notebook


@dataclass(frozen=True)
class SetupSettings:
    """Notebook 00: how many images each dataset preview shows."""

    grid_images: int
    mni_slices: int
    hippocampus_cases: int


@dataclass(frozen=True)
class TheorySettings:
    """Notebook 01: the toy GANs on a 2-D Gaussian mixture (trained in steps, with their own small loop)."""

    num_steps: int
    batch_size: int
    latent_dim: int
    width: int  # hidden units of the toy MLPs
    lr_g: float
    lr_d: float
    snapshot_every: int  # steps between snapshots
    jsd_grid_points: int
    collapse_lr_g: float = 1e-3  # the mode-collapsing variant: same generator step ...
    collapse_lr_d: float = 1e-4  # ... but a discriminator that learns 10x more slowly
    dstar_steps: int = 1000  # training steps of the 1-D discriminator that should learn D*


@dataclass(frozen=True)
class DCGANSettings:
    """Notebook 02: the DCGAN run on MedMNIST (data, model size, training, evaluation sample)."""

    dataset: str  # MedMNIST flag; without the file the loader falls back, visibly, to MNI152 slices
    image_size: int  # 28 (MedMNIST), 64 or 128 (MedMNIST+ files)
    width: int  # channels of the generator's last hidden layer (DCGANGenerator / DCGANDiscriminator base_width)
    train: TrainConfig  # DCGAN's Adam (lr 2e-4, betas 0.5 / 0.999) and the run's length
    eval_samples: int  # generated images for the sanity check (mean/std, nearest real neighbour)
    train_fraction: float = 1.0  # share of the training split used (smoke: a small part)


@dataclass(frozen=True)
class EvaluationSettings:
    """Notebook 03: judging generated images with domain features, k-NN metrics, KS and a memorisation audit."""

    dataset: str  # MedMNIST flag (the data the DCGAN of notebook 02 learned; its checkpoint is found by this name)
    image_size: int
    num_samples: int  # images per method and seed (capped by the validation half that is the floor)
    seeds: tuple[int, ...]  # sampling seeds; mean ± sd over them
    k: int  # neighbours for precision/recall and density/coverage
    classifier: DomainClassifierSettings  # cached; notebooks 04, 05 and 08 reuse it
    collapse_modes: int  # distinct images of the deliberately mode-collapsed generator
    pca_components: int  # the blurry baseline: a Gaussian in this many principal components
    inception_samples: int  # images per set for the optional standard Inception FID
    inception_download: bool  # may the optional Inception FID download its weights?
    # a DCGAN trained here only when notebook 02's checkpoint is absent (same package call as 02)
    dcgan_width: int
    dcgan: TrainConfig
    dcgan_train_fraction: float  # share of the training split (1.0: all)
    audit_percentile: float = 1.0  # memorisation threshold: this percentile of baseline-to-train distances
    small_sample_draws: int = 100  # draws per n in the FD-vs-KID small-sample experiment


@dataclass(frozen=True)
class ConditionalGANSettings:
    """Notebook 04: conditional GAN per cross-validation fold and a ResNet-18 trained in four regimes."""

    dataset: str  # MedMNIST flag (BreastMNIST: 546 + 78 images; PneumoniaMNIST also works)
    folds: int  # stratified k-fold over train + val
    max_pool: int | None  # cap on the pooled train + val images (a stratified subset; None: all)
    gan_width: int
    gan: TrainConfig  # TTUR with the hinge loss and spectral norm (SN-GAN's recipe): the critic learns 4x faster
    classifier: ResNetSettings
    domain_classifier: DomainClassifierSettings  # the feature network of the per-class GAN metrics (notebook 03's)
    synthetic_ratio: float = 1.0  # 'real + GAN' adds this many synthetic images per real training image
    image_size: int = 28
    cv_seed: int = 0  # fold assignment (repetition j of repeated CV shuffles with cv_seed + j)
    seed: int = 0  # GAN and classifier seeds are seed + fold index
    k: int = 5  # neighbours for precision/recall and density/coverage (as in notebook 03)
    repeats: int = 1  # repeated cross-validation: repeats x folds (Bouckaert & Frank, 2004)
    fractions: tuple[float, ...] = (1.0,)  # learning curve: shares of each fold's training part (1.0 = Step 7)
    bootstrap_resamples: int = 2000  # resamples of the official test images for its confidence intervals
    target_sensitivity: float = 0.9  # the operating point: threshold chosen on inner validation for this sensitivity


@dataclass(frozen=True)
class SuperResolutionSettings:
    """Notebook 05: SRResNet, SRGAN and its control at x4 on MSD hippocampus subjects (MNI152 as the fallback)."""

    image_size: int  # side of the MNI152 fallback slices (hippocampus crops are always 64 px)
    crop_size: int  # side of the high-resolution training crops (64 = whole hippocampus slices)
    train_crops: int  # random crops drawn once from the (flipped and turned) training slices
    width: int  # SRResNet channels
    num_blocks: int  # SRResNet residual blocks
    critic_width: int  # SRGAN discriminator channels of its first stage
    pretrain: TrainConfig  # SRResNet x4 (pixel loss: lr_g), the SRGAN's starting point
    srgan: TrainConfig  # SRGAN fine-tuning (pixel + feature + adversarial); the control continues with it too
    classifier: DomainClassifierSettings  # the domain classifier of notebook 03 (feature network; cache shared)
    seeds: tuple[int, ...]  # training seeds: SRResNet, control and SRGAN once per seed
    subjects: int | None  # hippocampus cases used (None: all 260), split 70 / 10 / 20 % into train / val / test
    two_sample_steps: int  # optimisation steps of each classifier two-sample test (the perception axis)
    degradation: str = "kspace"  # in-plane MRI resolution: k-space truncation ("area": thick-slice box average)
    edge_margin: int = 4  # pixels of each hippocampus crop's artificial edge left out of the scores
    pixel_weight: float = 1.0  # SRGAN's generator loss: pixel (L1) + feature + adversarial
    feature_weight: float = 1.0  # 0: no feature loss, so SRGAN - control is the adversarial term's effect alone
    adversarial_weight: float = 5e-2
    min_clusters: int = 10  # fewer test subjects (or slice blocks) than this: no verdicts, too few to resample
    # the smallest changes a verdict calls a difference (below them a change is too small to matter or to trust):
    min_psnr_db: float = 0.1  # ~2 % RMS error
    min_ssim: float = 0.005
    min_sharpness: float = 0.02  # |gradient ratio - 1|: 2 % of the truth's edge energy
    min_accuracy: float = 0.03  # three points of two-sample accuracy
    bootstrap_resamples: int = 2000  # cluster bootstrap over test subjects
    feature_dataset: str = "pneumoniamnist"  # the domain classifier's data (notebook 03's)
    allow_vgg_download: bool = True  # try the ImageNet VGG-19 weights first (548 MB, once)


@dataclass(frozen=True)
class DenoisingSettings:
    """Notebook 06: L1 U-Net, pix2pix GAN and its no-critic control vs tuned non-local means, over noise levels."""

    image_size: int  # side of the MNI152 axial slices
    crop_size: int  # side of the training crops
    train_crops: int  # clean training crops (each gets one noise draw per level)
    levels: tuple[float, ...]  # Rician sigma of the sweep (units of the [0, 1] range); one blind model for all
    default_level: float  # the level of the goal, the figures and the lesion test (one of `levels`)
    width: int  # U-Net channels at full resolution
    depth: int  # U-Net down/up stages
    critic_width: int  # PatchGAN channels of its first layer
    l1: TrainConfig  # the L1 U-Net (also the GAN's starting point; lr_g)
    gan: TrainConfig  # the fine-tuning (pix2pix's Adam), for the GAN and for its control (adversarial weight 0)
    xray_images: int  # PneumoniaMNIST test images for the low-dose (Beer-Lambert) X-ray check
    seeds: tuple[int, ...] = (0,)  # training seeds: one L1 U-Net, GAN and control per seed
    noise_model: str = "rician"
    pixel_weight: float = 100.0  # pix2pix: lambda = 100 for the L1 term, 1 for the adversarial term
    adversarial_weight: float = 1.0
    critic_layers: int = 3  # PatchGAN stride-2 layers (3: 38 px patches)
    sigma_margin: int = 4  # sigma is read from the background more than this many px outside the brain mask
    nlm_patch_size: int = 5  # non-local means (scikit-image); h and the search distance are tuned on validation
    nlm_h_factors: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.9, 2.2, 2.6)  # h / sigma-hat (2 sigma-hat on M^2)
    nlm_patch_distances: tuple[int, ...] = (1, 2, 3, 5)  # search radius in px (1: a 3 x 3 search window, the smallest)
    xray_photons: tuple[float, ...] = (300.0, 1000.0, 3000.0)  # I0: unattenuated photons per pixel
    xray_mu_max: float = 3.0  # attenuation line integral of the brightest pixel (mu = mu_max x)
    xray_exposures: int = 100  # repeated exposures of the same images for the Beer-Lambert check
    lesion_radius: float = 2.5  # the synthetic lesions (pixels) ...
    lesion_contrast: float = 0.1  # ... and their contrast in [0, 1] units
    lesion_sites: int = 12  # places inside the brain of the test slices, each with and without a lesion
    lesion_draws: int = 6  # noise draws per site
    bootstrap_resamples: int = 2000  # cluster bootstrap over the test slice blocks
    min_meaningful_db: float = 0.1  # minimum meaningful differences, fixed before the results are seen
    min_meaningful_ssim: float = 0.005
    min_meaningful_sharpness: float = 0.02  # of the gradient ratio
    min_meaningful_contrast: float = 0.05  # of a lesion's contrast (kept or false)


@dataclass(frozen=True)
class SegmentationSettings:
    """Notebook 07: U-Net segmenter with and without an (image, mask) critic on hippocampus MRI."""

    image_size: int  # slices are zero-padded to this square (64 holds every Task04 slice without resizing)
    width: int  # U-Net channels at full resolution (doubling per stage)
    depth: int  # U-Net down/up stages
    train: TrainConfig  # the same for every run: the same number of segmenter (lr_g) updates; critic lr_d
    adversarial_weights: tuple[float, ...]  # lambda grid (critic loss next to Dice + CE), chosen on validation
    critic_width: int
    critic_layers: int  # PatchGAN stride-2 layers (3: each logit sees a 38 x 38 patch)
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds per recipe; the lambda grid is run with the first
    mask_encoding: str = "straight_through"  # how the critic sees masks (course_utils.training.mask_encoding)
    shortcut_images: int = 1200  # training slices for the shape-free (pixelwise) shortcut test, half to test
    shortcut_steps: int = 300  # optimisation steps of that test's classifier
    shortcut_closed_below: float = 0.55  # closed if the upper 95 % bound of that test's accuracy is below this
    # the smallest changes that count, set before the runs; Dice is the primary endpoint. 0.01 Dice (one point)
    # is the smallest gain segmentation papers usually claim; 1 mm is one voxel of the hippocampus crops
    min_dice_difference: float = 0.01
    min_hd95_difference_mm: float = 1.0
    min_nsd_difference: float = 0.01
    min_subjects: int = 10  # no verdict with fewer held-out cases
    dice_goal: float | None = None  # mean 3-D Dice this profile is expected to reach (None: no goal)
    max_train_cases: int | None = None  # None: every training subject (the smoke profile uses a few)
    max_eval_cases: int | None = None  # None: every validation/test subject


@dataclass(frozen=True)
class StabilitySettings:
    """Notebook 08: four GAN objectives over seeds, a stress test, DiffAugment on a small set.

    Notebook 09 loads the same runs (for its privacy audit, pitfalls and latent probe) with these settings.
    """

    # loss comparison: the same DCGAN with non-saturating, hinge + SN, WGAN-GP + TTUR and RpGAN + R1 + R2
    dataset: str  # MedMNIST flag of the loss comparison (notebook 02's data)
    image_size: int
    width: int
    train: TrainConfig  # length and batch of every run; the non-saturating, hinge and RpGAN runs use its Adam
    wgan: TrainConfig  # WGAN-GP with TTUR: the critic learns 4x faster (SAGAN's pair; WGAN-GP used 1e-4 for both)
    train_fraction: float  # share of the training split used
    seeds: tuple[int, ...]  # training seeds per objective: mean ± sd over them
    eval_samples: int  # generated images per run for the metrics (capped by the test split)
    snapshot_samples: int  # fixed-noise images per epoch (domain-FD over training, the stability curve)
    classifier: DomainClassifierSettings  # the domain classifier (same recipe as notebook 03, so its cache is shared)
    # small data: DiffAugment with and without
    small_dataset: str  # a small MedMNIST set (BreastMNIST: 546 training images)
    small: TrainConfig
    small_seeds: tuple[int, ...]
    small_classifier: DomainClassifierSettings
    k: int = 5  # neighbours for precision/recall and density/coverage (as in notebook 03)
    gp_weight: float = 10.0
    audit_percentile: float = 1.0
    near_copy_ratio: float = 0.5  # baseline images closer than this x the median to a training image are left out
    r3gan_gamma: float = 0.05  # R1 + R2 weight of the RpGAN row (R3GAN's CIFAR-10 value; not tuned here)
    stress_lr_factor: float = 10.0  # the stress test: every objective's own learning rates times this
    stress: TrainConfig = TrainConfig(num_epochs=3, batch_size=64)  # its length and batch (learning rates: above)
    stress_seeds: tuple[int, ...] = (0, 1, 2)
    operator_norm_iterations: int = 500  # power iterations of Step 1's true operator norms (capped under the cap)


@dataclass(frozen=True)
class OpenChallengesSettings:
    """Notebook 09: compute cost, privacy, evaluation pitfalls, a latent probe and a 3-D GAN.

    The 2-D GANs are notebook 08's runs (`settings_for("08_stabilizing_gans")`), loaded from their checkpoints.
    """

    timing_steps: int  # training steps timed per model for the compute-cost table
    interpret_samples: int  # latent codes for the interpretability probe
    # a 3-D DCGAN on AdrenalMNIST3D's binary shape masks
    volume_dataset: str
    volume_size: int  # 28 or 64 voxels per side
    volume_width: int  # generator and discriminator
    volume: TrainConfig
    volume_train_fraction: float
    volume_samples: int = 98  # generated volumes scored (the validation split's size; capped by it)
    volume_prior_bias: bool = True  # the generator's last bias at the foreground prior (prior_output_bias)
    shape_factor: float = 1.5  # a statistic's generated mean within this factor of the real mean: "close"
    dice_fraction: float = 0.75  # nearest-train Dice at least this share of the held-out real volumes' value
    dice_margin: float = 0.1  # diversity / nearest-train Dice more than this above the real value: collapse / copies


@dataclass(frozen=True)
class GenerativeComparisonSettings:
    """Notebook 10: a GAN, a diffusion model and a flow-matching model on the same images with the same budget.

    Every run's length is in epochs, chosen so that each of the three takes about `budget_seconds` of training
    on the reference machine (one thread of a 2-core laptop CPU for `cpu`); the notebook prints the measured
    time of every run next to the budget, so a learner on another device sees whether the budgets still match.
    """

    dataset: str  # MedMNIST flag (PneumoniaMNIST: 4,708 training images, 2 classes)
    image_size: int
    gan_width: int  # notebook 04's ConditionalGenerator / ProjectionDiscriminator
    denoiser_width: int  # TimeConditionedUNet, about the GAN generator's parameter count
    gan: TrainConfig  # the non-saturating loss with DCGAN's Adam (notebook 08's lowest-FD objective)
    denoiser: TrainConfig  # diffusion and flow matching alike (the same network costs the same per step)
    budget_seconds: float  # the training time per run that `gan` and `denoiser` were sized for (reference machine)
    seeds: tuple[int, ...]
    eval_samples: int  # images per set for the metrics (capped by the held-out floor)
    sample_steps: int  # network evaluations per image of the denoisers in the table (DDIM / Euler steps)
    step_sweep: tuple[int, ...]  # sampling steps for the quality-vs-steps figure
    sweep_samples: int  # images per point of that figure
    classifier: DomainClassifierSettings  # the feature network (notebook 08's recipe, so its cache is shared)
    # small data: memorisation on BreastMNIST (546 training images)
    small_dataset: str
    small_gan: TrainConfig
    small_denoiser: TrainConfig
    small_budget_seconds: float
    small_seeds: tuple[int, ...]
    small_classifier: DomainClassifierSettings
    k: int = 5  # neighbours for precision/recall and density/coverage (as in notebook 03)
    audit_percentile: float = 1.0
    near_copy_ratio: float = 0.5  # floor images closer than this x the median to a training image are left out
    train_fraction: float = 1.0  # share of the training split used
    ema_decay: float = 0.995  # the denoisers sample with an exponential moving average of their weights
    num_train_steps: int = 1000  # diffusion's T (cosine schedule)


def _denoiser_adam(num_epochs: int, batch_size: int, lr: float = 5e-4) -> TrainConfig:
    """The denoisers' Adam, betas (0.9, 0.999), learning rate `lr` (`lr_d` is unused: there is no critic)."""
    return TrainConfig(num_epochs=num_epochs, batch_size=batch_size, lr_g=lr, lr_d=lr, betas=(0.9, 0.999))


def _ttur(num_epochs: int, batch_size: int) -> TrainConfig:
    """TTUR: Adam (0, 0.9), critic 4e-4, generator 1e-4 (Heusel et al.'s rule with SAGAN's pair; not WGAN-GP's own
    recipe, which is 1e-4 for both networks and 5 critic steps per generator step)."""
    return TrainConfig(num_epochs=num_epochs, batch_size=batch_size, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.9))


_ADAM = (0.9, 0.999)  # Adam's defaults: the pixel-loss and mostly supervised runs

NOTEBOOK_SETTINGS: dict[str, dict[str, Any]] = {
    "00_setup_and_data": {
        "smoke": SetupSettings(grid_images=16, mni_slices=6, hippocampus_cases=2),
        "cpu": SetupSettings(grid_images=36, mni_slices=8, hippocampus_cases=4),
        "gpu": SetupSettings(grid_images=64, mni_slices=8, hippocampus_cases=4),
    },
    "01_gan_theory_and_loss_math": {
        "smoke": TheorySettings(
            num_steps=300, batch_size=256, latent_dim=2, width=64,
            lr_g=1e-3, lr_d=1e-3, snapshot_every=100, jsd_grid_points=2001,
            collapse_lr_g=1e-3, collapse_lr_d=1e-4, dstar_steps=200,
        ),
        "cpu": TheorySettings(
            num_steps=3000, batch_size=256, latent_dim=2, width=128,
            lr_g=1e-3, lr_d=1e-3, snapshot_every=500, jsd_grid_points=20001,
            collapse_lr_g=1e-3, collapse_lr_d=1e-4, dstar_steps=1500,
        ),
        "gpu": TheorySettings(
            num_steps=5000, batch_size=512, latent_dim=2, width=128,
            lr_g=1e-3, lr_d=1e-3, snapshot_every=1000, jsd_grid_points=20001,
            collapse_lr_g=1e-3, collapse_lr_d=1e-4, dstar_steps=1500,
        ),
    },
    "02_dcgan_medmnist": {
        "smoke": DCGANSettings(
            dataset="pneumoniamnist", image_size=28, width=16, eval_samples=256, train_fraction=0.2,
            train=TrainConfig(num_epochs=2, batch_size=64, snapshot_every=1),
        ),
        "cpu": DCGANSettings(
            dataset="pneumoniamnist", image_size=28, width=64, eval_samples=1000,
            train=TrainConfig(num_epochs=25, batch_size=128, snapshot_every=1),
        ),
        "gpu": DCGANSettings(  # image_size=128 also works (MedMNIST+ 128 px file, 4x the pixels of 64)
            dataset="pneumoniamnist", image_size=64, width=64, eval_samples=1000,
            train=TrainConfig(num_epochs=100, batch_size=128, snapshot_every=5),
        ),
    },
    "03_evaluating_gans": {
        "smoke": EvaluationSettings(
            dataset="pneumoniamnist", image_size=28, num_samples=128, seeds=(0, 1), k=5,
            classifier=DomainClassifierSettings(num_epochs=1, train_fraction=0.1), collapse_modes=4,
            pca_components=8, inception_samples=16, inception_download=False,
            dcgan_width=8, dcgan=TrainConfig(num_epochs=1, batch_size=32), dcgan_train_fraction=0.05,
            small_sample_draws=10,
        ),
        "cpu": EvaluationSettings(
            dataset="pneumoniamnist", image_size=28, num_samples=600, seeds=tuple(range(10)), k=5,
            classifier=DomainClassifierSettings(num_epochs=8), collapse_modes=4, pca_components=32,
            inception_samples=200, inception_download=True,
            dcgan_width=32, dcgan=TrainConfig(num_epochs=6, batch_size=64), dcgan_train_fraction=1.0,
        ),
        "gpu": EvaluationSettings(
            dataset="pneumoniamnist", image_size=64, num_samples=600, seeds=tuple(range(10)), k=5,
            classifier=DomainClassifierSettings(num_epochs=10), collapse_modes=4, pca_components=64,
            inception_samples=600, inception_download=True,
            dcgan_width=64, dcgan=TrainConfig(num_epochs=50, batch_size=128), dcgan_train_fraction=1.0,
        ),
    },
    "04_conditional_gan_augmentation": {
        "smoke": ConditionalGANSettings(
            dataset="breastmnist", folds=2, max_pool=96, gan_width=8, gan=_ttur(num_epochs=1, batch_size=16),
            classifier=ResNetSettings(stem="pooled", num_steps=2, batch_size=16, eval_every=1, patience=2),
            domain_classifier=DomainClassifierSettings(num_epochs=1), fractions=(0.5, 1.0),
            bootstrap_resamples=200,
        ),
        "cpu": ConditionalGANSettings(
            dataset="breastmnist", folds=5, max_pool=None, gan_width=32, gan=_ttur(num_epochs=80, batch_size=32),
            classifier=ResNetSettings(stem="pooled", num_steps=240, batch_size=32, eval_every=10, patience=4),
            # BreastMNIST's domain classifier is notebook 08's and 10's (one cache); the learning curve's lower
            # fractions are left to `gpu`: the 25 % point took 704 s of the notebook's 1,723 s on one thread
            domain_classifier=DomainClassifierSettings(num_epochs=15), fractions=(1.0,),
        ),
        "gpu": ConditionalGANSettings(
            dataset="breastmnist", folds=5, max_pool=None, gan_width=64, gan=_ttur(num_epochs=300, batch_size=32),
            classifier=ResNetSettings(stem="medmnist", num_steps=2000, batch_size=64, eval_every=25, patience=10),
            domain_classifier=DomainClassifierSettings(num_epochs=10), repeats=3, fractions=(0.1, 0.25, 0.5, 1.0),
        ),
    },
    "05_srgan_mri_super_resolution": {
        "smoke": SuperResolutionSettings(
            image_size=64, crop_size=32, train_crops=32, width=8, num_blocks=1, critic_width=8,
            pretrain=TrainConfig(num_epochs=1, batch_size=16, lr_g=1e-3, betas=_ADAM),
            srgan=TrainConfig(num_epochs=1, batch_size=16, lr_g=1e-4, lr_d=1e-4, betas=_ADAM),
            classifier=DomainClassifierSettings(num_epochs=1, train_fraction=0.1),
            seeds=(0,), subjects=20, two_sample_steps=5, bootstrap_resamples=200, feature_weight=0.0,
            allow_vgg_download=False,
        ),
        "cpu": SuperResolutionSettings(
            image_size=128, crop_size=64, train_crops=2400, width=16, num_blocks=4, critic_width=16,
            pretrain=TrainConfig(num_epochs=4, batch_size=16, lr_g=1e-3, betas=_ADAM),
            srgan=TrainConfig(num_epochs=1, batch_size=16, lr_g=1e-4, lr_d=1e-4, betas=_ADAM),
            classifier=DomainClassifierSettings(num_epochs=8), seeds=(0, 1, 2), subjects=None, two_sample_steps=150,
            feature_weight=0.0,  # the only offline feature network is a chest-X-ray classifier: L1 + adversarial
        ),
        "gpu": SuperResolutionSettings(
            image_size=128, crop_size=64, train_crops=16000, width=64, num_blocks=16, critic_width=64,
            pretrain=TrainConfig(num_epochs=10, batch_size=32, lr_g=1e-3, betas=_ADAM),
            srgan=TrainConfig(num_epochs=4, batch_size=32, lr_g=1e-4, lr_d=1e-4, betas=_ADAM),
            classifier=DomainClassifierSettings(num_epochs=10), seeds=(0, 1, 2, 3, 4), subjects=None,
            two_sample_steps=1000,
        ),
    },
    "06_denoising_gan": {
        "smoke": DenoisingSettings(
            image_size=64, crop_size=32, train_crops=32, levels=(0.03, 0.06, 0.1), default_level=0.06, width=4,
            depth=2, critic_width=8, xray_images=8, seeds=(0,), nlm_h_factors=(0.8, 1.2), nlm_patch_distances=(3,),
            xray_exposures=20, lesion_sites=4, lesion_draws=2, bootstrap_resamples=200,
            l1=TrainConfig(num_epochs=1, batch_size=16, lr_g=1e-3, betas=_ADAM),
            gan=TrainConfig(num_epochs=1, batch_size=16, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
        ),
        "cpu": DenoisingSettings(
            image_size=128, crop_size=48, train_crops=200, levels=(0.03, 0.06, 0.1), default_level=0.06, width=16,
            depth=3, critic_width=32, xray_images=64, seeds=(0, 1, 2),
            l1=TrainConfig(num_epochs=8, batch_size=16, lr_g=1e-3, betas=_ADAM),
            gan=TrainConfig(num_epochs=3, batch_size=16, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
        ),
        "gpu": DenoisingSettings(
            image_size=128, crop_size=96, train_crops=3000, levels=(0.03, 0.06, 0.1), default_level=0.06, width=32,
            depth=4, critic_width=64, xray_images=256, seeds=(0, 1, 2), lesion_sites=24, lesion_draws=16,
            l1=TrainConfig(num_epochs=40, batch_size=32, lr_g=1e-3, betas=_ADAM),
            gan=TrainConfig(num_epochs=20, batch_size=32, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
        ),
    },
    "07_segmentation_gan": {
        "smoke": SegmentationSettings(
            image_size=64, width=8, depth=3, adversarial_weights=(0.02, 0.1), critic_width=8, critic_layers=3,
            train=TrainConfig(num_epochs=1, batch_size=32, lr_g=1e-3, lr_d=2e-4, betas=_ADAM), seeds=(0,),
            shortcut_images=128, shortcut_steps=20, max_train_cases=4, max_eval_cases=2,
        ),
        "cpu": SegmentationSettings(
            image_size=64, width=16, depth=3, adversarial_weights=(0.02, 0.1), critic_width=32, critic_layers=3,
            # 3 epochs: 2 took 16.5 min and lost 0.011 Dice (RESULTS.md, issue 18), so 07 stays over the budget
            train=TrainConfig(num_epochs=3, batch_size=32, lr_g=1e-3, lr_d=2e-4, betas=_ADAM), seeds=(0, 1, 2),
            dice_goal=0.80,
        ),
        "gpu": SegmentationSettings(
            image_size=64, width=32, depth=4, adversarial_weights=(0.01, 0.03, 0.1, 0.3), critic_width=64,
            critic_layers=3, train=TrainConfig(num_epochs=30, batch_size=64, lr_g=1e-3, lr_d=2e-4, betas=_ADAM),
            seeds=(0, 1, 2, 3, 4), shortcut_images=4000, shortcut_steps=400, dice_goal=0.85,
        ),
    },
    "08_stabilizing_gans": {
        "smoke": StabilitySettings(
            dataset="pneumoniamnist", image_size=28, width=8, train=TrainConfig(num_epochs=2, batch_size=32),
            wgan=_ttur(num_epochs=2, batch_size=32), train_fraction=0.05, seeds=(0, 1), eval_samples=96,
            snapshot_samples=64, classifier=DomainClassifierSettings(num_epochs=1, train_fraction=0.1),
            small_dataset="breastmnist", small=TrainConfig(num_epochs=2, batch_size=32), small_seeds=(0, 1),
            small_classifier=DomainClassifierSettings(num_epochs=1),
            stress=TrainConfig(num_epochs=1, batch_size=32), stress_seeds=(0,),
        ),
        "cpu": StabilitySettings(
            dataset="pneumoniamnist", image_size=28, width=32, train=TrainConfig(num_epochs=12, batch_size=64),
            wgan=_ttur(num_epochs=12, batch_size=64), train_fraction=1.0, seeds=(0, 1, 2), eval_samples=600,
            snapshot_samples=256, classifier=DomainClassifierSettings(num_epochs=8),
            small_dataset="breastmnist", small=TrainConfig(num_epochs=120, batch_size=32), small_seeds=(0, 1, 2),
            small_classifier=DomainClassifierSettings(num_epochs=15),
        ),
        "gpu": StabilitySettings(
            dataset="pneumoniamnist", image_size=64, width=64, train=TrainConfig(num_epochs=40, batch_size=128),
            wgan=_ttur(num_epochs=40, batch_size=128), train_fraction=1.0, seeds=(0, 1, 2, 3, 4), eval_samples=600,
            snapshot_samples=256, classifier=DomainClassifierSettings(num_epochs=10),
            small_dataset="breastmnist", small=TrainConfig(num_epochs=400, batch_size=32),
            small_seeds=(0, 1, 2, 3, 4), small_classifier=DomainClassifierSettings(num_epochs=20),
            stress=TrainConfig(num_epochs=5, batch_size=128), stress_seeds=(0, 1, 2, 3, 4),
        ),
    },
    "09_open_challenges": {
        "smoke": OpenChallengesSettings(
            timing_steps=1, interpret_samples=128, volume_dataset="adrenalmnist3d", volume_size=28,
            volume_width=4, volume=TrainConfig(num_epochs=1, batch_size=8, latent_dim=64),
            volume_train_fraction=0.05, volume_samples=16,
        ),
        # the 3-D recipe of benchmarks/volume3d_recipe.py ("final"): width 16, 20 epochs, the prior output bias
        "cpu": OpenChallengesSettings(
            timing_steps=5, interpret_samples=2000, volume_dataset="adrenalmnist3d", volume_size=28,
            volume_width=16, volume=TrainConfig(num_epochs=20, batch_size=16, latent_dim=64),
            volume_train_fraction=1.0,
        ),
        "gpu": OpenChallengesSettings(
            timing_steps=10, interpret_samples=5000, volume_dataset="adrenalmnist3d", volume_size=64,
            volume_width=16, volume=TrainConfig(num_epochs=100, batch_size=16, latent_dim=64),
            volume_train_fraction=1.0,
        ),
    },
    "10_gan_vs_diffusion_vs_flow": {
        "smoke": GenerativeComparisonSettings(
            dataset="pneumoniamnist", image_size=28, gan_width=8, denoiser_width=8,
            gan=TrainConfig(num_epochs=1, batch_size=32), denoiser=_denoiser_adam(1, 32, lr=1e-3),
            budget_seconds=2, ema_decay=0.9, train_fraction=0.05, seeds=(0, 1), eval_samples=64, sample_steps=4,
            step_sweep=(1, 4), sweep_samples=32, classifier=DomainClassifierSettings(num_epochs=1, train_fraction=0.1),
            small_dataset="breastmnist", small_gan=TrainConfig(num_epochs=1, batch_size=32),
            small_denoiser=_denoiser_adam(1, 32, lr=1e-3), small_budget_seconds=1, small_seeds=(0, 1),
            small_classifier=DomainClassifierSettings(num_epochs=1),
        ),
        # sized on the dev machine (2-core CPU, one thread): a GAN epoch 2.7-3.6 s (73 steps of 64), a denoiser
        # step 0.14-0.17 s (batch 32); BreastMNIST 0.4 s and 2.5 s per epoch. Short runs: lr 1e-3 and a short EMA
        # (0.98, a half-life of 34 steps, warmed up) let the denoisers learn within the budget (tried on seed 0)
        "cpu": GenerativeComparisonSettings(
            dataset="pneumoniamnist", image_size=28, gan_width=16, denoiser_width=16,
            gan=TrainConfig(num_epochs=11, batch_size=64),
            denoiser=replace(_denoiser_adam(2, 32, lr=1e-3), max_steps=110),  # 220 steps
            budget_seconds=33, seeds=(0, 1, 2), eval_samples=300, sample_steps=8, step_sweep=(1, 2, 4, 8, 16, 32),
            sweep_samples=100, classifier=DomainClassifierSettings(num_epochs=8), ema_decay=0.98,
            small_dataset="breastmnist", small_gan=TrainConfig(num_epochs=22, batch_size=32),
            small_denoiser=_denoiser_adam(4, 32, lr=1e-3), small_budget_seconds=10, small_seeds=(0, 1, 2),
            small_classifier=DomainClassifierSettings(num_epochs=15),
        ),
        # not yet measured on a GPU: the notebook prints each run's time beside budget_seconds. Width 32 at 64 px
        # (1.1 M vs 1.0 M parameters) and denoiser batches of 32 keep the capped CPU check of these settings short
        "gpu": GenerativeComparisonSettings(
            dataset="pneumoniamnist", image_size=64, gan_width=32, denoiser_width=32,
            gan=TrainConfig(num_epochs=100, batch_size=128), denoiser=_denoiser_adam(40, 32),
            budget_seconds=300, seeds=(0, 1, 2, 3, 4), eval_samples=600, sample_steps=16,
            step_sweep=(1, 2, 4, 8, 16, 32, 64), sweep_samples=500, classifier=DomainClassifierSettings(num_epochs=10),
            small_dataset="breastmnist", small_gan=TrainConfig(num_epochs=400, batch_size=32),
            small_denoiser=_denoiser_adam(400, 32), small_budget_seconds=120,
            small_seeds=(0, 1, 2, 3, 4), small_classifier=DomainClassifierSettings(num_epochs=20),
        ),
    },
}

CAPPED_COUNTS: tuple[str, ...] = ("num_steps", "dstar_steps", "timing_steps", "small_sample_draws",
                                   "bootstrap_resamples", "two_sample_steps", "lesion_sites", "lesion_draws",
                                   "xray_exposures", "shortcut_steps", "volume_samples", "sample_steps",
                                   "operator_norm_iterations")
CAPPED_SEEDS: tuple[str, ...] = ("seeds", "small_seeds", "stress_seeds")
CAPPED_REPEATS: tuple[str, ...] = ("folds", "hippocampus_cases", "max_train_cases", "max_eval_cases")  # at most 2
CAPPED_SUBJECTS: tuple[str, ...] = ("subjects",)  # 05's split by case: 20 cases (None = all), enough to resample
CAPPED_TO_ONE: tuple[str, ...] = ("repeats",)  # repeated cross-validation runs once (its folds are unit-tested)
CAPPED_SEQUENCES: tuple[str, ...] = ("fractions", "nlm_h_factors", "nlm_patch_distances",
                                     "adversarial_weights")
CAPPED_STEP_SEQUENCES: tuple[str, ...] = ("step_sweep",)  # first and last kept, each at most the cap
CAPPED_SAMPLES: tuple[str, ...] = ("eval_samples", "sweep_samples")  # at most SAMPLE_CAP images scored
SAMPLE_CAP = 96  # the smoke profile's eval_samples: every notebook's scoring is known to work with it  # first and last kept


def apply_step_cap(settings: Any, cap: int) -> Any:
    """`settings` with every training run cut to `cap` optimisation steps, and nothing else changed.

    The explicit mechanism behind `COURSE_STEP_CAP` (used to check a profile on a machine it is not meant for,
    e.g. the `gpu` profile on a CPU): every `TrainConfig` runs one epoch of at most `cap` steps, the step counts
    named in `CAPPED_COUNTS` are at most `cap`, every domain classifier trains one epoch, seed lists keep their
    first two seeds, the repeats in `CAPPED_REPEATS` (folds, subjects) are at most two, 05's split by case in
    `CAPPED_SUBJECTS` uses 20 cases, those in `CAPPED_TO_ONE` (repeated cross-validation) one, and the sequences in
    `CAPPED_SEQUENCES` (learning-curve fractions) keep their first and last value, those in
    `CAPPED_STEP_SEQUENCES` (sampling steps) their first and last at most `cap`, and `CAPPED_SAMPLES` (images
    scored) at most `SAMPLE_CAP`. Image sizes, widths,
    batch sizes, data files and the code paths stay exactly those of a full run; the numbers are meaningless.
    """
    require_int(cap, "step cap")
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, TrainConfig):
            changes[field.name] = dataclasses.replace(value, num_epochs=1, max_steps=cap)
        elif isinstance(value, DomainClassifierSettings):
            changes[field.name] = dataclasses.replace(value, num_epochs=1)
        elif dataclasses.is_dataclass(value):
            changes[field.name] = apply_step_cap(value, cap)
        elif field.name in CAPPED_COUNTS and isinstance(value, int):
            changes[field.name] = min(value, cap)
        elif field.name in CAPPED_SEEDS and isinstance(value, tuple):
            changes[field.name] = value[:2]
        elif field.name in CAPPED_REPEATS and (value is None or isinstance(value, int)):
            changes[field.name] = 2 if value is None else min(value, 2)
        elif field.name in CAPPED_SUBJECTS and (value is None or isinstance(value, int)):
            changes[field.name] = 20 if value is None else min(value, 20)
        elif field.name in CAPPED_TO_ONE and isinstance(value, int):
            changes[field.name] = 1
        elif field.name in CAPPED_SEQUENCES and isinstance(value, tuple) and len(value) > 2:
            changes[field.name] = (value[0], value[-1])
        elif field.name in CAPPED_STEP_SEQUENCES and isinstance(value, tuple) and value:
            changes[field.name] = tuple(sorted({min(value[0], cap), min(value[-1], cap)}))
        elif field.name in CAPPED_SAMPLES and isinstance(value, int):
            changes[field.name] = min(value, SAMPLE_CAP)
    return dataclasses.replace(settings, **changes)


def step_cap() -> int | None:
    """The cap set by `COURSE_STEP_CAP`, or None when it is unset."""
    value = os.environ.get(STEP_CAP_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ProfileError(f"{STEP_CAP_ENV}={value!r} must be a whole number of training steps >= 1 (e.g. 2), or unset.")
    return int(value)


NotebookName = Literal[
    "00_setup_and_data", "01_gan_theory_and_loss_math", "02_dcgan_medmnist", "03_evaluating_gans",
    "04_conditional_gan_augmentation", "05_srgan_mri_super_resolution", "06_denoising_gan", "07_segmentation_gan",
    "08_stabilizing_gans", "09_open_challenges", "10_gan_vs_diffusion_vs_flow",
]


@overload
def settings_for(notebook: Literal["00_setup_and_data"], profile: str | None = None) -> SetupSettings: ...
@overload
def settings_for(notebook: Literal["01_gan_theory_and_loss_math"], profile: str | None = None) -> TheorySettings: ...
@overload
def settings_for(notebook: Literal["02_dcgan_medmnist"], profile: str | None = None) -> DCGANSettings: ...
@overload
def settings_for(notebook: Literal["03_evaluating_gans"], profile: str | None = None) -> EvaluationSettings: ...
@overload
def settings_for(notebook: Literal["04_conditional_gan_augmentation"],
                 profile: str | None = None) -> ConditionalGANSettings: ...
@overload
def settings_for(notebook: Literal["05_srgan_mri_super_resolution"],
                 profile: str | None = None) -> SuperResolutionSettings: ...
@overload
def settings_for(notebook: Literal["06_denoising_gan"], profile: str | None = None) -> DenoisingSettings: ...
@overload
def settings_for(notebook: Literal["07_segmentation_gan"], profile: str | None = None) -> SegmentationSettings: ...
@overload
def settings_for(notebook: Literal["08_stabilizing_gans"], profile: str | None = None) -> StabilitySettings: ...
@overload
def settings_for(notebook: Literal["09_open_challenges"],
                 profile: str | None = None) -> OpenChallengesSettings: ...
@overload
def settings_for(notebook: Literal["10_gan_vs_diffusion_vs_flow"],
                 profile: str | None = None) -> GenerativeComparisonSettings: ...
@overload
def settings_for(notebook: str, profile: str | None = None) -> Any: ...


def settings_for(notebook: str, profile: str | None = None) -> Any:
    """Return the frozen settings of `notebook` (its file stem) under `profile` (default: active).

    Typed per notebook name, so an editor completes the fields (e.g. `settings_for("02_dcgan_medmnist").train`).
    """
    profile = profile or active_profile()
    if profile not in PROFILES:
        raise ProfileError(f"Unknown profile {profile!r}; expected one of {', '.join(PROFILES)}.")
    try:
        per_profile = NOTEBOOK_SETTINGS[notebook]
    except KeyError:
        known = ", ".join(sorted(NOTEBOOK_SETTINGS))
        raise ProfileError(f"No settings for notebook {notebook!r}. Known notebooks: {known}.") from None
    cap = step_cap()
    if cap is not None:
        warnings.warn(f"{STEP_CAP_ENV}={cap}: every training run of {notebook} stops after {cap} step(s); the "
                      "shapes and code paths are the profile's own, the numbers mean nothing.", stacklevel=2)
        return apply_step_cap(per_profile[profile], cap)
    return per_profile[profile]
