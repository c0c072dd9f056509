"""Profiles (`smoke`, `cpu`, `gpu`) and per-notebook run settings as frozen dataclasses.

`COURSE_PROFILE` picks the profile; unset means `gpu` when CUDA is available, else `cpu`.
A notebook's Configuration cell calls `settings_for("<notebook stem>")` and reads nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROFILE_ENV = "COURSE_PROFILE"
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


def active_profile() -> str:
    """The profile in force: `COURSE_PROFILE` if set, else `gpu` with CUDA, else `cpu`."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if not value:
        return "gpu" if _cuda_available() else "cpu"
    if value not in PROFILES:
        raise ProfileError(
            f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a course profile. "
            f"Use one of {', '.join(PROFILES)} (e.g. `export {PROFILE_ENV}=cpu`), or unset it to pick "
            "`gpu` when CUDA is available and `cpu` otherwise."
        )
    return value


@dataclass(frozen=True)
class SetupSettings:
    """Notebook 00: how many images each dataset preview shows."""

    grid_images: int
    mni_slices: int
    hippocampus_cases: int


@dataclass(frozen=True)
class TheorySettings:
    """Notebook 01: the toy GANs on a 2-D Gaussian mixture."""

    toy_steps: int
    toy_batch_size: int
    toy_latent_dim: int
    toy_hidden: int
    lr_g: float
    lr_d: float
    snapshot_every: int
    jsd_grid_points: int
    collapse_lr_g: float = 1e-3  # the mode-collapsing variant: same generator step ...
    collapse_lr_d: float = 1e-4  # ... but a discriminator that learns 10x more slowly
    dstar_steps: int = 1000  # training steps of the 1-D discriminator that should learn D*


NOTEBOOK_SETTINGS: dict[str, dict[str, object]] = {
    "00_setup_and_data": {
        "smoke": SetupSettings(grid_images=16, mni_slices=6, hippocampus_cases=2),
        "cpu": SetupSettings(grid_images=36, mni_slices=8, hippocampus_cases=4),
        "gpu": SetupSettings(grid_images=64, mni_slices=8, hippocampus_cases=4),
    },
    "01_gan_theory_and_loss_math": {
        "smoke": TheorySettings(
            toy_steps=300, toy_batch_size=256, toy_latent_dim=2, toy_hidden=64,
            lr_g=1e-3, lr_d=1e-3, snapshot_every=100, jsd_grid_points=2001,
            collapse_lr_g=1e-3, collapse_lr_d=1e-4, dstar_steps=200,
        ),
        "cpu": TheorySettings(
            toy_steps=3000, toy_batch_size=256, toy_latent_dim=2, toy_hidden=128,
            lr_g=1e-3, lr_d=1e-3, snapshot_every=500, jsd_grid_points=20001,
            collapse_lr_g=1e-3, collapse_lr_d=1e-4, dstar_steps=1500,
        ),
        "gpu": TheorySettings(
            toy_steps=5000, toy_batch_size=512, toy_latent_dim=2, toy_hidden=128,
            lr_g=1e-3, lr_d=1e-3, snapshot_every=1000, jsd_grid_points=20001,
            collapse_lr_g=1e-3, collapse_lr_d=1e-4, dstar_steps=1500,
        ),
    },
}


def settings_for(notebook: str, profile: str | None = None):
    """Return the frozen settings of `notebook` (its file stem) under `profile` (default: active)."""
    profile = profile or active_profile()
    if profile not in PROFILES:
        raise ProfileError(f"Unknown profile {profile!r}; expected one of {', '.join(PROFILES)}.")
    try:
        per_profile = NOTEBOOK_SETTINGS[notebook]
    except KeyError:
        known = ", ".join(sorted(NOTEBOOK_SETTINGS))
        raise ProfileError(f"No settings for notebook {notebook!r}. Known notebooks: {known}.") from None
    return per_profile[profile]
