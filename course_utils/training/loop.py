"""The adversarial training loop: d-step / g-step, history, snapshots, checkpoints, exact resume, NaN guard.

Introduced in notebook 02 (`02_dcgan_medmnist`, "the training loop", "checkpoints and resume"); the later
notebooks reuse `train_gan` with their own `GANSteps` subclass (conditional GAN, SRGAN, denoising,
segmentation, WGAN-GP).

How one call of `train_gan` runs:

- **Batches** come from tensors already on the model's device: every epoch draws a permutation with its
  own `torch.Generator` seeded from `(seed, epoch)` (`batch_order`), so the order is the same in every
  run and after a resume. uint8 images are converted per batch to float `[-1, 1]`; the last incomplete
  batch of an epoch is dropped (stable batch-norm statistics and shapes).
- **One step** = `steps.d_step(batch)` then `steps.g_step(batch)`; each returns a dict of 0-d tensors
  (`loss_d`, `d_real` = mean D(x), `d_fake` = mean D(G(z)), `loss_g`, ...). They stay on the device;
  the loop copies them to the CPU only every `log_every` steps and at the end of an epoch, so nothing
  waits for the GPU every step. `history` holds the per-epoch means, `step_history` every step's value.
- **Noise** for the steps comes from a dedicated `torch.Generator` on the device, seeded with `seed`; its
  state, the global RNG states, models, optimisers and gradient scalers are all in the checkpoint.
- **Snapshots**: images from fixed noise (generator in eval mode) before training and every
  `snapshot_every` epochs, kept as CPU uint8 `(num_samples, C, H, W)` tensors (`x.float() / 255` → [0, 1]).
- **Checkpoints** (`<checkpoint_dir>/last.pt`, written atomically) every `checkpoint_every` epochs, at
  the end, and when you interrupt the kernel. Calling `train_gan` again with the same arguments resumes
  from it; an interrupted-and-resumed CPU run ends bit-identical to an uninterrupted one.
- **Interrupting** (Jupyter's ■ button or Ctrl-C): the current step finishes, a checkpoint is written,
  and `TrainingInterrupted` (a `KeyboardInterrupt`, so "Run all" stops there) is raised; its message says
  how to resume and its `.result` holds the partial history. A second interrupt stops at once.
- **NaN guard**: at every sync point the logged values are checked; a NaN or infinity stops training with
  `TrainingDivergedError`, which names the epoch, step and value, and the last good checkpoint (never
  overwritten by a diverged state: parameters are checked before every save). A finite value above 1e4 in
  absolute value warns once per run (training goes on): it usually comes shortly before a NaN.
- **Resume safety**: the checkpoint stores the settings a resumed run must share, including the `amp` mode
  and a fingerprint of the data (shape, dtype and the bytes of up to 256 evenly spaced rows of every data
  tensor), so other images of the same shape are refused with `CheckpointMismatchError`. The checkpoint
  folder is created and checked for writability before the first step.
- **Speed on CUDA**: mixed precision (`amp='auto'`: bf16 where the GPU supports it, else fp16 with one
  gradient scaler per optimiser), fused Adam, channels-last memory format, optional `torch.compile`.
  On CPU and MPS `amp='auto'` means full float32; channels-last is on by default on CPU too (not on MPS).
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils import report
from course_utils.checkpoint import (
    CheckpointMismatchError,
    config_to_dict,
    load_checkpoint,
    prepare_checkpoint_dir,
    refuse_training_if_required,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from course_utils.config import AMP_MODES, TrainConfig
from course_utils.data.imageset import ImageSet, to_uint8
from course_utils.inference import eval_mode
from course_utils.report import MEMORY_ENV
from course_utils.training.memory import estimate_step_memory
from course_utils.training.steps import DCGANSteps, GANSteps, StepContext

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = 1
_EPOCH_SEED_STRIDE = 1_000_003  # batch-order seed = seed * stride + epoch (a prime, so runs do not overlap)
_FINGERPRINT_ROWS = 256  # rows of each data tensor hashed into the checkpoint's data fingerprint
_HUGE_VALUE = 1e4  # a logged value beyond this (in absolute value) is finite but suspicious: warn once
_IMAGE_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # float images kept as they are
_REMEDIES = (
    "Typical remedies: lower the learning rates (e.g. halve lr_d and lr_g), check that the images are in "
    "[-1, 1] (uint8 data is converted for you; float data must be converted with `to_model_range`), try "
    "amp='off' to rule out mixed precision, or use a more stable objective (non-saturating or hinge loss, "
    "spectral norm in the discriminator, WGAN-GP; notebook 08)."
)


# ----------------------------------------------------------------------------- configuration


def _native_bf16(device: torch.device) -> bool:
    """True for GPUs that compute in bfloat16 natively (compute capability 8.0+: Ampere, Hopper, ...).

    `torch.cuda.is_bf16_supported()` also says True where bf16 is only emulated (e.g. Colab's T4, 7.5), which
    is slow; those GPUs get fp16 with a gradient scaler instead.
    """
    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def resolve_amp(amp: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`, or None for full float32 ('auto' is None off CUDA)."""
    device = torch.device(device)
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(repr(m) for m in AMP_MODES)}; got {amp!r}.")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if _native_bf16(device) else torch.float16
    if amp == "bf16":
        if device.type == "cuda" and not _native_bf16(device):
            raise ValueError("amp='bf16' was asked for, but this GPU does not support bfloat16; use 'fp16' or 'auto'.")
        if device.type not in ("cuda", "cpu"):
            raise ValueError(f"amp='bf16' is supported on CUDA and CPU, not on {device.type}; use amp='off'.")
        return torch.bfloat16
    if device.type != "cuda":  # fp16
        raise ValueError(
            f"amp='fp16' needs a CUDA GPU (it uses a gradient scaler); the models are on {device.type}. "
            "Use amp='auto' or 'off' (float32) here, or 'bf16' on a CPU that supports it."
        )
    return torch.float16


def batch_order(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation `(num_items,)` (CPU, int64) that orders epoch `epoch` (0-based) of a run with `seed`."""
    rng = torch.Generator().manual_seed((seed * _EPOCH_SEED_STRIDE + epoch) % 2**63)
    return torch.randperm(num_items, generator=rng)


# ----------------------------------------------------------------------------- errors


class TrainingDivergedError(RuntimeError):
    """Training produced a NaN or infinite value; the last good checkpoint was left as it was."""

    def __init__(self, message: str, *, epoch: int, step: int, name: str, value: float,
                 checkpoint_path: Path | None, result: TrainingResult | None = None) -> None:
        super().__init__(message)
        self.epoch, self.step, self.name, self.value = epoch, step, name, value  # 1-based epoch and step
        self.checkpoint_path = checkpoint_path
        self.result = result  # history up to the last good sync point


class AcceleratorMemoryError(RuntimeError):
    """The GPU (or MPS device) ran out of memory during training; the message says what to change."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted by the user; `.result` holds what was trained, `.checkpoint_path` the resume point."""

    def __init__(self, message: str, *, result: TrainingResult, checkpoint_path: Path | None, saved: bool) -> None:
        super().__init__(message)
        self.result = result
        self.checkpoint_path = checkpoint_path
        self.saved = saved  # True when a checkpoint was written at the moment of the interrupt


@dataclass
class TrainingResult:
    """What `train_gan` returns: the trained networks, histories, snapshots and speed."""

    generator: nn.Module
    discriminator: nn.Module
    history: dict[str, list[float]]  # per-epoch means of every logged value, index 0 = epoch 1
    step_history: dict[str, list[float]]  # every step's value
    snapshots: dict[int, torch.Tensor]  # epochs completed -> CPU uint8 (num_samples, C, H, W); 0 = before training
    fixed_noise: torch.Tensor
    epochs_completed: int
    checkpoint_path: Path | None
    # seconds, images, images_per_second: this call only; seconds_total: training time of every call so far,
    # kept in the checkpoint (a run loaded from a finished checkpoint still knows how long it trained)
    timing: dict[str, float] = field(default_factory=dict)

    def latest_snapshot(self) -> torch.Tensor:
        """The newest snapshot as float [0, 1] `(num_samples, C, H, W)`, ready for `viz.show_grid`."""
        if not self.snapshots:
            raise ValueError("No snapshots were taken (snapshot_every=0 and training did not finish an epoch).")
        return self.snapshots[max(self.snapshots)].float() / 255.0


# ----------------------------------------------------------------------------- interrupts


class _DeferredInterrupt:
    """While active (main thread only), the first SIGINT sets `requested`; a second one raises KeyboardInterrupt."""

    def __init__(self, announce: bool) -> None:
        self.requested = False
        self.announce = announce
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        """Signal handler: remember the request, or give up waiting on the second one."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            tqdm.write(
                "Interrupt received: finishing the current step and saving a checkpoint "
                "(interrupt again to stop at once, without saving).",
                file=sys.stderr,
            )

    def __enter__(self) -> _DeferredInterrupt:
        """Install the handler (only possible in the main thread)."""
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: installed outside Python; leave it alone
                signal.signal(signal.SIGINT, self._handle)
                self._previous, self._installed = previous, True
        return self

    def __exit__(self, *exc: object) -> None:
        """Put the previous SIGINT handler back."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


# ----------------------------------------------------------------------------- the loop


def _as_tensors(data: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The training data as a tuple of same-length tensors on `device` (images first).

    Float images other than float32/float16/bfloat16 (e.g. float64) become float32, with a warning: the
    models, their noise and their snapshots are float32.
    """
    if isinstance(data, ImageSet):
        data = data.images
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data) if isinstance(data, Sequence) else None
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(
            "data must be an image tensor (N, C, H, W) (uint8 or float in [-1, 1]), an ImageSet, or a tuple of "
            f"tensors with the images first (e.g. (images, labels)); got {type(data).__name__}."
        )
    images = tensors[0]
    if images.dim() not in (4, 5) or not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise ValueError(
            f"The images must be a uint8 or float tensor of shape (N, C, H, W) (or (N, C, D, H, W) volumes, "
            f"notebook 08); got {images.dtype} "
            f"{tuple(images.shape)}. Add the channel axis with `images[:, None]` for (N, H, W) data."
        )
    counts = {int(t.shape[0]) for t in tensors}
    if len(counts) != 1:
        raise ValueError(f"All data tensors need the same first dimension (one row per sample); got {sorted(counts)}.")
    if images.is_floating_point() and images.dtype not in _IMAGE_FLOAT_DTYPES:
        name = str(images.dtype).removeprefix("torch.")
        warnings.warn(
            f"The images are {name}; converted them to float32, the models' precision (the networks would "
            f"refuse {name} input). Pass uint8 or float32 images (e.g. `images.float()`) to skip this copy.",
            stacklevel=4,
        )
        tensors = (images.to(device=device, dtype=torch.float32), *tensors[1:])
    return tuple(t.to(device) for t in tensors)  # a no-op for tensors already on the device


def _data_fingerprint(tensors: Sequence[torch.Tensor]) -> str:
    """A cheap fingerprint of the training data: SHA-1 (first 16 hex digits) of each tensor's shape, dtype and
    the exact bytes of up to 256 evenly spaced rows (the first and the last included).

    The same on every device (the bytes are hashed on the CPU) and for every dtype (bf16 and half included,
    read as raw bytes). One small copy to the CPU; `_Trainer` computes it once per run.
    """
    digest = hashlib.sha1()
    for tensor in tensors:
        count = int(tensor.shape[0])
        rows = min(count, _FINGERPRINT_ROWS)
        index = [i * (count - 1) // (rows - 1) for i in range(rows)] if rows > 1 else list(range(rows))
        picked = torch.index_select(tensor.detach(), 0, torch.tensor(index, dtype=torch.int64, device=tensor.device))
        raw = picked.cpu().contiguous().reshape(-1).view(torch.uint8)  # (rows * row_numel * itemsize,) bytes
        digest.update(f"{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_image_range(images: torch.Tensor) -> None:
    """ValueError for float images outside [-1, 1]; a warning when they look like [0, 1] (one sync, at start)."""
    if images.dtype == torch.uint8:
        return
    low, high = (float(v) for v in torch.aminmax(images.detach()))
    if not (math.isfinite(low) and math.isfinite(high)) or low < -1.001 or high > 1.001:
        raise ValueError(
            f"Float images must lie in [-1, 1] (the generator's tanh range); these span [{low:.4g}, {high:.4g}]. "
            "Pass uint8 images (converted per batch) or convert them with `to_model_range` / `x * 2 - 1`."
        )
    if low >= 0.0 and high <= 1.0:
        warnings.warn(
            f"The float images span [{low:.3g}, {high:.3g}], which looks like [0, 1]; the models work in [-1, 1]. "
            "Convert with `x * 2 - 1` unless that range is intended.",
            stacklevel=3,
        )


def _nonfinite_tensor(modules: Mapping[str, nn.Module]) -> str | None:
    """Name of the first parameter or float buffer holding NaN/inf, or None (one GPU sync)."""
    named = [
        (f"{owner}.{name}", t)
        for owner, module in modules.items()
        for name, t in [*module.named_parameters(), *module.named_buffers()]
        if t.is_floating_point()
    ]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in named])  # (P,) bool on the device
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0, 0])][0]


class _Trainer:
    """The state and the pieces of one `train_gan` call (kept private: the function is the interface)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, data: Any, config: TrainConfig,
                 steps: GANSteps, checkpoint_dir: str | Path | None, progress: bool) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}.")
        if not isinstance(steps, GANSteps):
            raise TypeError(f"steps must be a GANSteps instance (e.g. DCGANSteps()); got {type(steps).__name__}.")
        self.generator, self.discriminator, self.config, self.steps = generator, discriminator, config, steps
        self.device = self._model_device()
        self.data = _as_tensors(data, self.device)
        self.data_bytes = sum(t.numel() * t.element_size() for t in self.data)  # all of it, before any cap
        if config.max_steps is not None:  # a capped run (e.g. COURSE_STEP_CAP): the first max_steps batches only
            self.data = tuple(t[: config.max_steps * config.batch_size] for t in self.data)
        self.num_items = int(self.data[0].shape[0])
        if self.num_items < config.batch_size:
            raise ValueError(
                f"The data has {self.num_items} samples, fewer than batch_size={config.batch_size}; an epoch would "
                "have no complete batch. Lower batch_size or use more data."
            )
        self.steps_per_epoch = self.num_items // config.batch_size  # the incomplete last batch is dropped
        self.data_fingerprint = _data_fingerprint(self.data)  # once per run (a small copy to the CPU)
        # The folder is created and checked now, not at the first save after the training time was spent.
        self.checkpoint_path = (
            prepare_checkpoint_dir(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        )
        self.progress = progress
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed in the current epoch
        self.keys: list[str] = []
        self.history: dict[str, list[float]] = {}
        self.step_history: dict[str, list[float]] = {}
        self.snapshots: dict[int, torch.Tensor] = {}
        self.window: list[torch.Tensor] = []  # per-step (K,) tensors on the device since the last sync
        self.in_critical = False  # True while the state is between two consistent points
        self.last_saved: tuple[Path, int, int] | None = None  # (path, epoch, step) of the last good checkpoint
        self.seconds, self.images_seen = 0.0, 0
        self.seconds_before = 0.0  # training seconds of earlier calls (from the checkpoint; NaN if it has none)
        self.bar: Any = None
        self.interrupt: _DeferredInterrupt | None = None
        self.warned_huge = False  # the finite-but-huge value warning is given once per run

    def _model_device(self) -> torch.device:
        """The device of the generator's parameters; ValueError if the discriminator is elsewhere."""
        try:
            g_device = next(self.generator.parameters()).device
            d_device = next(self.discriminator.parameters()).device
        except StopIteration:
            raise ValueError("The generator and discriminator must have parameters to train.") from None
        if g_device != d_device:
            raise ValueError(
                f"The generator is on {g_device} but the discriminator on {d_device}; move both to one device "
                "(e.g. `discriminator.to(device)`)."
            )
        return g_device

    # -- setup ---------------------------------------------------------------------------------------

    def setup(self, fixed_noise: torch.Tensor | None) -> None:
        """Optimisers, scalers, memory format, compilation, noise generator and fixed noise."""
        config, device = self.config, self.device
        self.amp_dtype = resolve_amp(config.amp, device)
        wanted = device.type in ("cuda", "cpu") if config.channels_last is None else config.channels_last
        channels_last = wanted and self.data[0].dim() == 4  # 2-D images only
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        opt_g, opt_d = self.steps.make_optimisers(self.generator, self.discriminator, config, device)
        use_scaler = self.amp_dtype == torch.float16
        scaler_g = torch.amp.GradScaler(device.type) if use_scaler else None
        scaler_d = torch.amp.GradScaler(device.type) if use_scaler else None
        g_train = torch.compile(self.generator) if config.compile else self.generator
        d_train = torch.compile(self.discriminator) if config.compile else self.discriminator
        noise_rng = torch.Generator(device=device).manual_seed(config.seed)
        self.context = StepContext(
            generator=g_train, discriminator=d_train, generator_module=self.generator,
            discriminator_module=self.discriminator, opt_g=opt_g, opt_d=opt_d, scaler_g=scaler_g,
            scaler_d=scaler_d, config=config, device=device, amp_dtype=self.amp_dtype, noise_rng=noise_rng,
            channels_last=channels_last,
        )
        self.steps.bind(self.context)
        _check_image_range(self.data[0])
        if fixed_noise is None:
            self.fixed_noise = self.steps.make_fixed_noise(config, device)
            self.fixed_noise_given = False
        else:
            self.fixed_noise = fixed_noise.to(device)
            self.fixed_noise_given = True
        self._check_sample_shape()

    def _check_sample_shape(self) -> None:
        """For plain image data: the generator must make images shaped like the data."""
        if len(self.data) != 1:
            return
        sample = self._sample(self.fixed_noise[:1])  # (1, C, H, W) uint8; no RNG used, eval mode
        if sample.shape[1:] != self.data[0].shape[1:]:
            raise ValueError(
                f"The generator makes images of shape {tuple(sample.shape[1:])} but the data are "
                f"{tuple(self.data[0].shape[1:])} (C, H, W). Build the generator with the data's image size and "
                "channels (e.g. DCGANGenerator(latent_dim, image_size=H, channels=C))."
            )

    def settings(self) -> dict[str, Any]:
        """The settings a checkpoint must share with this run to be resumed (num_epochs may grow)."""
        config = self.config

        def describe(module: nn.Module) -> str:
            return f"{type(module).__name__} with {sum(p.numel() for p in module.parameters())} parameters"

        return {
            "batch_size": config.batch_size, "lr_g": config.lr_g, "lr_d": config.lr_d, "betas": list(config.betas),
            "latent_dim": config.latent_dim, "seed": config.seed, "num_samples": config.num_samples,
            "amp": config.amp,  # the mode ('auto', ...), not the dtype: a CPU checkpoint resumes on a GPU
            "generator": describe(self.generator), "discriminator": describe(self.discriminator),
            "steps": self.steps.settings(),
            "data": {"count": self.num_items, "shape": list(self.data[0].shape[1:]), "dtype": str(self.data[0].dtype),
                     "fingerprint": self.data_fingerprint},
        }

    # -- checkpoints ---------------------------------------------------------------------------------

    def restore(self, resume: bool) -> bool:
        """Load the checkpoint when resuming and one exists; True if it did."""
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        if not resume:
            warnings.warn(f"resume=False: starting afresh; the checkpoint {path} will be overwritten.", stacklevel=3)
            return False
        try:
            state = load_checkpoint(path, expected_config=self.settings())  # CheckpointMismatchError on changes
        except CheckpointMismatchError as error:
            missing = [key for key, stored, _ in error.differences if stored == "<missing>"]
            if {"amp", "data.fingerprint"} & set(missing):
                raise CheckpointMismatchError(
                    f"Checkpoint {path} was written by an older version of the course, whose checkpoints do not "
                    "record the data fingerprint and the amp mode, so it cannot be checked against this run. Start "
                    "a fresh run: train_gan(..., resume=False), or delete the file or its folder.",
                    differences=error.differences,
                ) from None
            raise
        if state.get("format") != CHECKPOINT_FORMAT or state.get("steps_per_epoch") != self.steps_per_epoch:
            raise ValueError(f"Checkpoint {path} was not written by this version of train_gan; start a fresh run.")
        ctx = self.context
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        ctx.opt_g.load_state_dict(state["opt_g"])
        ctx.opt_d.load_state_dict(state["opt_d"])
        for scaler, key in ((ctx.scaler_g, "scaler_g"), (ctx.scaler_d, "scaler_d")):
            if scaler is not None and state.get(key):
                scaler.load_state_dict(state[key])
        stored_noise = state["fixed_noise"]
        if self.fixed_noise_given and not torch.equal(self.fixed_noise.cpu(), stored_noise):
            raise ValueError(
                f"fixed_noise differs from the one stored in {path}; pass fixed_noise=None when resuming "
                "(the stored noise is used) or start a fresh run in another checkpoint_dir."
            )
        self.fixed_noise = stored_noise.to(self.device)
        if state["noise_device"] == self.device.type:
            ctx.noise_rng.set_state(state["noise_rng"])
        else:
            warnings.warn(
                f"The checkpoint was written on {state['noise_device']}, this run is on {self.device.type}: training "
                "continues correctly, but not bit-identically to an uninterrupted run.",
                stacklevel=3,
            )
            ctx.noise_rng.manual_seed(self.config.seed + state["epoch"] * self.steps_per_epoch + state["step"])
        self.steps.load_state_dict(state["steps_state"])
        self.seconds_before = float(state.get("seconds_trained", math.nan))  # older checkpoints: not recorded
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.keys = list(state["history"])
        self.history = {k: [float(v) for v in values] for k, values in state["history"].items()}
        self.step_history = {k: state["step_history"][k].tolist() for k in self.keys}
        self.snapshots = {int(k): v for k, v in state["snapshots"].items()}
        set_rng_state(state["rng"])  # last: nothing above may draw random numbers afterwards
        self.last_saved = (path, self.epoch, self.step)
        return True

    def save(self) -> None:
        """Write the checkpoint atomically, after checking that no parameter is NaN/inf."""
        if self.checkpoint_path is None:
            return
        bad = _nonfinite_tensor({"generator": self.generator, "discriminator": self.discriminator})
        if bad is not None:  # the last step's update broke the weights although its logged losses were finite
            epoch, step = (self.epoch + 1, self.step) if self.step > 0 else (self.epoch, self.steps_per_epoch)
            raise self._diverged(epoch, step, bad, math.nan, what=f"{bad} is NaN or infinite after the optimiser step")
        ctx = self.context
        state = {
            "format": CHECKPOINT_FORMAT,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": ctx.opt_g.state_dict(),
            "opt_d": ctx.opt_d.state_dict(),
            "scaler_g": ctx.scaler_g.state_dict() if ctx.scaler_g is not None else None,
            "scaler_d": ctx.scaler_d.state_dict() if ctx.scaler_d is not None else None,
            "epoch": self.epoch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "history": {k: list(v) for k, v in self.history.items()},
            "step_history": {k: torch.tensor(v, dtype=torch.float64) for k, v in self.step_history.items()},
            "snapshots": dict(self.snapshots),
            "fixed_noise": self.fixed_noise.detach().cpu(),
            "noise_rng": ctx.noise_rng.get_state(),
            "noise_device": self.device.type,
            "rng": rng_state(),
            "steps_state": self.steps.state_dict(),
            "train_config": config_to_dict(self.config),
            "seconds_trained": self.seconds_before + self.seconds,  # over every call so far (completed epochs)
        }
        save_checkpoint(self.checkpoint_path, state, self.settings())
        self.last_saved = (self.checkpoint_path, self.epoch, self.step)

    # -- the loop --------------------------------------------------------------------------------------

    def run(self) -> None:
        """Train until `num_epochs` epochs are complete."""
        config = self.config
        if self.epoch == 0 and self.step == 0 and 0 not in self.snapshots:
            self.snapshots[0] = self._sample(self.fixed_noise)  # before training
        total = config.num_epochs * self.steps_per_epoch
        done = min(self.epoch * self.steps_per_epoch + self.step, total)
        self.bar = tqdm(total=total, initial=done, disable=not self.progress, unit="step", dynamic_ncols=True)
        while self.epoch < config.num_epochs:
            self._run_epoch()
        if self.last_saved is None or self.last_saved[1:] != (self.epoch, self.step):
            self.save()  # the final state (when no periodic save fell on the last epoch)

    def _run_epoch(self) -> None:
        """The remaining steps of the current epoch, then its bookkeeping."""
        config, batch_size = self.config, self.config.batch_size
        self.bar.set_description(f"epoch {self.epoch + 1}/{config.num_epochs}")
        order = batch_order(self.num_items, config.seed, self.epoch)  # (N,) on the CPU, once per epoch
        if self.device.type == "cuda":
            order = order.pin_memory().to(self.device, non_blocking=True)  # no host wait for the copy
        else:
            order = order.to(self.device)
        started, first_step = time.perf_counter(), self.step
        while self.step < self.steps_per_epoch:
            index = order[self.step * batch_size:(self.step + 1) * batch_size]  # (B,)
            batch = tuple(torch.index_select(t, 0, index) for t in self.data)  # gathered on the device
            batch = self.steps.prepare_batch(batch[0] if len(batch) == 1 else batch)
            self.in_critical = True
            values = self._one_step(batch)  # (K,) on the device
            self.window.append(values)
            self.step += 1
            self.in_critical = False
            self.bar.update(1)
            if len(self.window) >= config.log_every:
                self.flush()
            if self.interrupt is not None and self.interrupt.requested:
                raise KeyboardInterrupt  # handled in train_gan: save here, at a step boundary
        self.flush()  # the epoch's last sync
        self.seconds += time.perf_counter() - started
        self.images_seen += (self.steps_per_epoch - first_step) * batch_size
        self._end_epoch()
        if self.interrupt is not None and self.interrupt.requested and self.epoch < config.num_epochs:
            raise KeyboardInterrupt  # (an interrupt during the very last epoch's bookkeeping just lets it finish)

    def _one_step(self, batch: Any) -> torch.Tensor:
        """d-step then g-step; their logs stacked into one (K,) float32 tensor (no sync)."""
        logs = dict(self.steps.d_step(batch))
        g_logs = self.steps.g_step(batch)
        overlap = set(logs) & set(g_logs)
        if overlap:
            raise ValueError(f"d_step and g_step both log {sorted(overlap)}; give the values different names.")
        logs.update(g_logs)
        if not self.keys:
            self.keys = list(logs)
            self.history = {k: [] for k in self.keys}
            self.step_history = {k: [] for k in self.keys}
        if list(logs) != self.keys:
            raise ValueError(
                f"The steps logged {list(logs)} but earlier steps logged {self.keys}; log the same names every step."
            )
        try:
            return torch.stack([logs[k].detach().reshape(()).float() for k in self.keys])  # (K,)
        except (AttributeError, RuntimeError) as err:
            raise TypeError(
                "d_step and g_step must return {name: 0-d tensor}, e.g. {'loss_d': loss_d.detach()}; "
                f"got types {[type(v).__name__ for v in logs.values()]} ({err})."
            ) from None

    def flush(self) -> None:
        """Copy the logged values to the CPU (one sync), check them for NaN/inf, extend `step_history`."""
        if not self.window:
            return
        was_critical, self.in_critical = self.in_critical, True  # an interrupt in here leaves no half-copied log
        values = torch.stack(self.window).cpu()  # (S, K): the only GPU -> CPU copy of the logs
        first = len(self.step_history[self.keys[0]])  # global index of the window's first step
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad):
            row, col = (int(v) for v in bad[0])
            global_step = first + row
            epoch, step = divmod(global_step, self.steps_per_epoch)
            self.window.clear()
            raise self._diverged(epoch + 1, step + 1, self.keys[col], float(values[row, col]))
        self.window.clear()
        for col, key in enumerate(self.keys):
            self.step_history[key].extend(values[:, col].tolist())
        self.in_critical = was_critical
        if self.bar is not None:
            means = values.mean(dim=0)  # (K,) over the window, for the progress bar
            self.bar.set_postfix({k: f"{float(means[i]):.3f}" for i, k in enumerate(self.keys)}, refresh=False)
        if not self.warned_huge:
            self._warn_if_huge(values, first)

    def _warn_if_huge(self, values: torch.Tensor, first: int) -> None:
        """Warn (once per run) when a logged value `(S, K)` on the CPU is finite but above 1e4 in absolute value."""
        huge = (values.abs() > _HUGE_VALUE).nonzero()
        if not len(huge):
            return
        self.warned_huge = True
        row, col = (int(v) for v in huge[0])
        epoch, step = divmod(first + row, self.steps_per_epoch)
        warnings.warn(
            f"{self.keys[col]} = {float(values[row, col]):.4g} at epoch {epoch + 1}/{self.config.num_epochs}, "
            f"step {step + 1}/{self.steps_per_epoch}: finite, but above {_HUGE_VALUE:g} in absolute value, which "
            "usually means training is diverging and a NaN will follow. Training goes on (this warning is shown "
            f"once per run). {_REMEDIES}",
            stacklevel=6,  # _warn_if_huge <- flush <- _run_epoch <- run <- train_gan <- the caller
        )

    def _end_epoch(self) -> None:
        """Per-epoch means, snapshot and checkpoint once the epoch's steps are done."""
        config, per_epoch = self.config, self.steps_per_epoch
        self.in_critical = True
        start = self.epoch * per_epoch
        for key in self.keys:
            self.history[key].append(math.fsum(self.step_history[key][start:start + per_epoch]) / per_epoch)
        self.epoch, self.step = self.epoch + 1, 0
        final = self.epoch == config.num_epochs
        if final or (config.snapshot_every > 0 and self.epoch % config.snapshot_every == 0):
            self.snapshots[self.epoch] = self._sample(self.fixed_noise)
        self.in_critical = False
        if final or (config.checkpoint_every > 0 and self.epoch % config.checkpoint_every == 0):
            self.save()

    def _sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Generator images for `noise` in eval mode, as CPU uint8 (a sync; only for snapshots)."""
        with eval_mode(self.generator), torch.no_grad():
            images = self.steps.sample(noise)  # (K, C, H, W) in [-1, 1]
        return to_uint8(images)

    # -- outcomes --------------------------------------------------------------------------------------

    def result(self) -> TrainingResult:
        """The current state as a `TrainingResult`."""
        return TrainingResult(
            generator=self.generator,
            discriminator=self.discriminator,
            history={k: list(v) for k, v in self.history.items()},
            step_history={k: list(v) for k, v in self.step_history.items()},
            snapshots=dict(self.snapshots),
            fixed_noise=self.fixed_noise,
            epochs_completed=self.epoch,
            checkpoint_path=self.last_saved[0] if self.last_saved else None,
            timing={
                "seconds": self.seconds,
                "images": float(self.images_seen),
                "images_per_second": self.images_seen / self.seconds if self.seconds > 0 else math.nan,
                "seconds_total": self.seconds_before + self.seconds,  # with earlier calls (NaN: not recorded)
            },
        )

    def _where_saved(self) -> str:
        """Where the last good checkpoint is, in words."""
        if self.last_saved is None:
            if self.checkpoint_path is None:
                return "No checkpoint exists (checkpoint_dir=None)."
            return f"No checkpoint had been saved yet, so {self.checkpoint_path} does not exist."
        path, epoch, step = self.last_saved
        return f"The last good checkpoint is {path} ({self._position(epoch, step)}); it was not overwritten."

    def _position(self, epoch: int, step: int) -> str:
        """'after epoch 3/10' or 'epoch 4/10, after step 12/40' (epochs completed, steps in the current one).

        Past `num_epochs` (a checkpoint of a longer run): 'after epoch 5, more than num_epochs=3', never '5/3'.
        """
        total = self.config.num_epochs
        if step == 0:
            return f"after epoch {epoch}/{total}" if epoch <= total else f"after epoch {epoch}, more than num_epochs={total}"
        if epoch < total:
            return f"epoch {epoch + 1}/{total}, after step {step}/{self.steps_per_epoch}"
        return f"epoch {epoch + 1}, after step {step}/{self.steps_per_epoch}, more than num_epochs={total}"

    def beyond_num_epochs(self) -> str | None:
        """The warning when the restored checkpoint is further along than `num_epochs`; None when it is not."""
        epoch, step, total = self.epoch, self.step, self.config.num_epochs
        if (epoch, step) <= (total, 0):
            return None
        epochs = f"{epoch} epoch{'s' if epoch != 1 else ''}"
        if step == 0:
            has, after = epochs, f"after epoch {epoch}"
        else:
            has = f"{epochs} and {step}/{self.steps_per_epoch} steps of epoch {epoch + 1}"
            after = f"after step {step}/{self.steps_per_epoch} of epoch {epoch + 1}"
        return (
            f"The checkpoint {self.checkpoint_path} already has {has}, more than num_epochs={total}, so nothing "
            f"was trained: the returned models, history and snapshots are those {after}. To train a shorter run "
            "from scratch, pass resume=False (this overwrites the checkpoint) or use another checkpoint_dir; to "
            "train further, raise num_epochs."
        )

    def _diverged(self, epoch: int, step: int, name: str, value: float, what: str | None = None) -> TrainingDivergedError:
        """The error for a NaN/inf at 1-based (epoch, step)."""
        what = what or f"{name} = {value}"
        message = (
            f"Training diverged at epoch {epoch}/{self.config.num_epochs}, step {step}/{self.steps_per_epoch}: "
            f"{what}. {self._where_saved()} {_REMEDIES}"
        )
        return TrainingDivergedError(message, epoch=epoch, step=step, name=name, value=value,
                                     checkpoint_path=self.last_saved[0] if self.last_saved else None,
                                     result=self.result())

    def interrupted(self, cause: KeyboardInterrupt) -> TrainingInterrupted:
        """Save if the state is consistent; the `TrainingInterrupted` to raise, with how to resume."""
        saved = False
        if not self.in_critical and self.checkpoint_path is not None:
            self.flush()
            if self.last_saved is None or self.last_saved[1:] != (self.epoch, self.step):
                self.save()  # (skipped when the interrupt came right after a periodic save of this state)
            saved = True
        position = self._position(self.epoch, self.step)
        if saved:
            how = (f"Saved a checkpoint at this point ({position}) to {self.checkpoint_path}. Run the same "
                   "train_gan(...) call again (resume=True) to continue exactly where it stopped.")
        elif self.checkpoint_path is None:
            how = "Nothing was saved (checkpoint_dir=None): a new call starts from scratch. Partial history: err.result."
        else:
            how = (f"The interrupt came in the middle of a step, so this state was not saved. {self._where_saved()} "
                   "Run the same train_gan(...) call again to continue from there (the steps since are repeated "
                   "identically).")
        return TrainingInterrupted(f"Training interrupted. {how}", result=self.result(),
                                   checkpoint_path=self.last_saved[0] if self.last_saved else None, saved=saved)


def run_one_step(
    generator: nn.Module,
    discriminator: nn.Module,
    batch: torch.Tensor | tuple[torch.Tensor, ...],
    config: TrainConfig,
    steps: GANSteps | None = None,
) -> dict[str, float]:
    """One d-step + g-step of `steps` on `batch`, exactly as `train_gan` does its first step; the logged values.

    For the notebooks' written-out steps: run the hand-written version on copies of the networks and this on
    other copies, with the same batch, and compare the losses and the updated weights. The step's noise comes
    from a `torch.Generator` on the models' device seeded with `config.seed` (as in `train_gan`); the networks
    are updated in place with fresh Adam optimisers (`config.lr_g`, `config.lr_d`, `config.betas`).
    """
    steps = DCGANSteps() if steps is None else steps
    batch = batch if isinstance(batch, tuple) else (batch,)
    trainer = _Trainer(generator, discriminator, batch, config, steps, None, progress=False)
    try:  # steps whose snapshots come from inputs (paired, segmentation) have no noise of their own
        steps.make_fixed_noise(config, torch.device("cpu"))
        fixed = None
    except ValueError:
        fixed = batch[0][:1].float()
    trainer.setup(fixed_noise=fixed)
    generator.train()
    discriminator.train()
    prepared = steps.prepare_batch(batch[0] if len(batch) == 1 else batch)
    values = trainer._one_step(prepared)  # (K,)
    return {key: float(value) for key, value in zip(trainer.keys, values.tolist(), strict=True)}


def _out_of_memory_message(trainer: _Trainer, error: BaseException) -> str:
    """What to do when a run does not fit into the accelerator's memory."""
    config, device = trainer.config, trainer.device
    free = ""
    if device.type == "cuda":
        free_bytes, total_bytes = torch.cuda.mem_get_info(device)
        free = f" ({free_bytes / 1e9:.1f} of {total_bytes / 1e9:.1f} GB free now)"
    return (
        f"The {device.type} device ran out of memory{free} while training with batch_size={config.batch_size}, "
        f"amp={config.amp!r}: {str(error).splitlines()[0][:160]}. {trainer._where_saved()} Lower the batch size "
        "(e.g. `dataclasses.replace(config, batch_size=config.batch_size // 2)`), keep amp='auto' (half-precision "
        "activations), restart the kernel to free memory held by earlier cells, or run a smaller profile "
        "(COURSE_PROFILE=cpu). `course_utils.training.memory.estimate_step_memory` says what a run needs."
    )


def assert_same_update(mine: nn.Module, package: nn.Module, rtol: float = 1e-5, atol: float = 1e-6,
                       max_mismatch: float = 1e-3) -> None:
    """AssertionError unless two copies of a network hold the same weights after one step (see `run_one_step`).

    Every parameter and buffer must agree within `rtol`/`atol`, except at most a `max_mismatch` share of the
    elements: Adam's first step divides each gradient by its own size, so an element whose gradient is almost 0
    turns round-off (another summation order, another kernel) into a visible difference. A real difference in
    the step (a loss term, a weight, a learning rate) moves almost every element.
    """
    mismatched, total, worst = 0, 0, ("", 0)
    for (name, a), (_, b) in zip(mine.state_dict().items(), package.state_dict().items(), strict=True):
        if a.shape != b.shape:
            raise AssertionError(f"{name}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
        if not a.is_floating_point():
            if not torch.equal(a, b):
                raise AssertionError(f"{name}: {a} vs {b}")
            continue
        bad = int((~torch.isclose(a.float(), b.float(), rtol=rtol, atol=atol)).sum())
        mismatched, total = mismatched + bad, total + a.numel()
        worst = max(worst, (name, bad), key=lambda item: item[1])
    if total and mismatched / total > max_mismatch:
        raise AssertionError(
            f"{mismatched} of {total} weights differ after the step (more than {max_mismatch:.1%}); most in "
            f"{worst[0]} ({worst[1]}): the two steps are not the same computation."
        )


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data: torch.Tensor | ImageSet | Sequence[torch.Tensor],
    config: TrainConfig,
    steps: GANSteps | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    fixed_noise: torch.Tensor | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train `generator` against `discriminator` on `data` (introduced in notebook 02; see the module docstring).

    `data`: images `(N, C, H, W)` uint8 (converted per batch to [-1, 1]) or float in [-1, 1], an `ImageSet`,
    or a tuple with the images first (e.g. `(images, labels)` for a conditional `GANSteps`); it is moved to
    the models' device once. `steps` defaults to `DCGANSteps()` (non-saturating loss). With `checkpoint_dir`
    the run checkpoints to `<checkpoint_dir>/last.pt` and, with `resume=True`, continues from it (raising
    `CheckpointMismatchError` if its settings, `amp` mode or data differ; `num_epochs` may grow; a smaller one
    trains nothing and warns). The folder is checked before training (`CheckpointError` if it cannot be
    written). With `COURSE_REQUIRE_TRAINED=1` a run under the checkpoint root that would train raises
    `UntrainedRunError` instead. Float64 images are converted to float32 (with a warning). Raises
    `TrainingInterrupted` on a kernel interrupt (after saving) and `TrainingDivergedError` on NaN/inf. With
    channels-last (on CUDA and CPU by default) the models are converted to that memory format in place.
    """
    steps = DCGANSteps() if steps is None else steps
    trainer = _Trainer(generator, discriminator, data, config, steps, checkpoint_dir, progress)
    trainer.setup(fixed_noise)
    generator.train()
    discriminator.train()
    resumed = trainer.restore(resume)
    if progress and resumed:
        print(f"Resumed from {trainer.checkpoint_path} ({trainer._position(trainer.epoch, trainer.step)}).")
    beyond = trainer.beyond_num_epochs()
    if beyond is not None:  # a warning, not a print: it shows with progress=False too
        warnings.warn(beyond, stacklevel=2)
        return trainer.result()
    if trainer.epoch >= config.num_epochs:
        if progress:
            print(f"Nothing to train: the checkpoint has {trainer.epoch} epochs, num_epochs={config.num_epochs}.")
        return trainer.result()
    if trainer.checkpoint_path is not None:  # COURSE_REQUIRE_TRAINED=1: the checkpoint root's runs only load
        detail = (f"epoch {trainer.epoch} of {config.num_epochs}" if resumed
                  else f"no finished checkpoint {trainer.checkpoint_path.name}")
        refuse_training_if_required(trainer.checkpoint_path.parent, detail)
    if os.environ.get(MEMORY_ENV, "").strip() == "1":
        estimate = estimate_step_memory(generator, discriminator, trainer.data, config, steps,
                                        data_bytes=trainer.data_bytes)
        name = trainer.checkpoint_path.parent.name if trainer.checkpoint_path is not None else type(steps).__name__
        report.memory(name, estimate.total_bytes, estimate.describe())
    try:
        with _DeferredInterrupt(announce=progress) as interrupt:
            trainer.interrupt = interrupt
            trainer.run()
    except KeyboardInterrupt as cause:  # TrainingDivergedError and other errors pass through unchanged
        raise trainer.interrupted(cause) from None
    except torch.OutOfMemoryError as error:
        raise AcceleratorMemoryError(_out_of_memory_message(trainer, error)) from error
    finally:
        trainer.interrupt = None
        if trainer.bar is not None:
            trainer.bar.close()
    return trainer.result()


__all__ = [
    "AMP_MODES",
    "AcceleratorMemoryError",
    "assert_same_update",
    "CHECKPOINT_NAME",
    "TrainConfig",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "TrainingResult",
    "batch_order",
    "resolve_amp",
    "run_one_step",
    "train_gan",
]
