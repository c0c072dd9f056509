"""Device choice (CUDA, Apple MPS, CPU), seeding and the determinism switch."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """Return `prefer` if given, else CUDA, else Apple MPS, else CPU."""
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Device {prefer!r} was asked for, but torch sees no CUDA GPU. Use 'cpu'.")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"Device {prefer!r} was asked for, but Apple MPS is not available. Use 'cpu'.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    """True on Apple silicon with a torch build that supports MPS."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (slower on GPU; bit-exact repeats on CPU)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def describe_environment() -> dict[str, str]:
    """Versions and hardware facts for the environment report in notebook 00."""
    import platform

    from course_utils.config import active_profile

    device = pick_device()
    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda available": str(torch.cuda.is_available()),
        "mps available": str(_mps_available()),
        "device": str(device),
        "profile": active_profile(),
        "cpu threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["bf16 supported"] = str(torch.cuda.is_bf16_supported())
    return facts


CPU_THREADS_ENV = "COURSE_CPU_THREADS"  # e.g. 1 on a laptop busy with other work
# torch's own choice when the package is imported: one thread per physical core, or OMP_NUM_THREADS if set
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else all logical cores)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def use_cpu_threads(device: torch.device | str) -> int:
    """On a CPU device, set torch's threads for training and return their number.

    `COURSE_CPU_THREADS` if set, else torch's default (one thread per physical core, or `OMP_NUM_THREADS`)
    capped at the cores this process may use. Measured on a quiet 2-core machine (`benchmarks/cpu_threads.py`,
    RESULTS.md): two threads train the course's convolutional models 1.5-2.2x faster than one. On a machine
    busy with other work, threads that share cores wait on each other; then `COURSE_CPU_THREADS=1` can be
    faster. A GPU device leaves torch's threads as they are.
    """
    if torch.device(device).type != "cpu":
        return torch.get_num_threads()
    value = os.environ.get(CPU_THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{CPU_THREADS_ENV}={value!r} must be a whole number of threads >= 1 (e.g. 1 on a "
                             "busy machine), or unset for one thread per core.")
        threads = int(value)
    else:
        threads = max(1, min(TORCH_DEFAULT_THREADS, usable_cores()))
    torch.set_num_threads(threads)
    return threads
