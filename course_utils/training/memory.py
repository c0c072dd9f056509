"""How much accelerator memory a training run needs: estimated from its parameters and saved activations.

A GAN step keeps, at its peak, the parameters of both networks, their gradients, Adam's two moment buffers,
the training data (which `train_gan` moves to the device once) and the activations autograd saves for the
backward pass. `estimate_step_memory` counts exactly those on the machine at hand (no GPU needed): it runs one
`run_one_step` on copies of the networks and records, with `torch.autograd.graph.saved_tensors_hooks`, the
largest total of saved tensors alive at once. The figure is for float32; bf16/fp16 autocast on a GPU roughly
halves the activation part. CUDA itself (its context, cuDNN workspaces, the caching allocator's slack) adds
about 0.3-1 GB on top, so compare `total_bytes` with the free memory, not the card's nominal size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from course_utils.config import TrainConfig

CUDA_OVERHEAD_BYTES = 1 << 30  # context + workspaces + allocator slack: a generous 1 GB


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs at its peak, by part (float32)."""

    parameters: int  # both networks
    optimiser_and_gradients: int  # gradients + Adam's two moments: 3x the parameters
    activations: int  # the largest total of autograd's saved tensors alive at once
    data: int  # the training tensors train_gan keeps on the device

    @property
    def total_bytes(self) -> int:
        """Everything above, without CUDA's own overhead."""
        return self.parameters + self.optimiser_and_gradients + self.activations + self.data

    def fits(self, free_bytes: int) -> bool:
        """True if the step fits into `free_bytes` with room for CUDA's overhead."""
        return self.total_bytes + CUDA_OVERHEAD_BYTES <= free_bytes

    def describe(self) -> str:
        """'1.23 GB (parameters 0.01, optimiser 0.03, activations 1.10, data 0.09 GB)'."""
        gb = 1e9
        return (f"{self.total_bytes / gb:.2f} GB (parameters {self.parameters / gb:.2f}, gradients + Adam "
                f"{self.optimiser_and_gradients / gb:.2f}, activations {self.activations / gb:.2f}, "
                f"data {self.data / gb:.2f} GB; float32, plus about 1 GB for CUDA itself)")


class _SavedTensorMeter:
    """Counts the bytes of tensors autograd saves for backward, and the peak of those alive at once."""

    def __init__(self) -> None:
        self.live: dict[int, int] = {}  # storage id -> bytes
        self.peak = 0

    def pack(self, tensor: torch.Tensor) -> Any:
        key = id(tensor.untyped_storage()) if tensor.layout == torch.strided else id(tensor)
        if key not in self.live:
            self.live[key] = tensor.untyped_storage().nbytes() if tensor.layout == torch.strided else 0
            self.peak = max(self.peak, sum(self.live.values()))
        return tensor, key

    def unpack(self, packed: Any) -> torch.Tensor:
        tensor, key = packed
        self.live.pop(key, None)  # used by backward: freed once the graph is released
        return tensor


def _parameter_bytes(*modules: nn.Module) -> int:
    """float32 bytes of every parameter and buffer of `modules`."""
    return sum(t.numel() * 4 for m in modules for t in [*m.parameters(), *m.buffers()] if t.is_floating_point())


def estimate_step_memory(generator: nn.Module, discriminator: nn.Module, data: Any, config: TrainConfig,
                         steps: Any = None, data_bytes: int | None = None) -> MemoryEstimate:
    """The memory one `train_gan` step of these networks on this data needs (see the module docstring).

    `data` is what `train_gan` gets (a tensor or a tuple with the images first); `data_bytes` overrides the size
    of the data kept on the device (e.g. the full data set when `data` is a capped part of it). The networks are
    copied and the global RNG is restored, so the caller's run is not affected.
    """
    from course_utils.training.loop import run_one_step

    tensors = data if isinstance(data, tuple | list) else (data,)
    batch = tuple(t[: config.batch_size] for t in tensors)
    meter = _SavedTensorMeter()
    g_copy, d_copy = copy.deepcopy(generator), copy.deepcopy(discriminator)
    devices = [d.index or 0 for d in {p.device for p in g_copy.parameters()} if d.type == "cuda"]
    bound = dict(vars(steps)) if steps is not None else None  # run_one_step binds `steps` to the copies ...
    try:
        with (torch.random.fork_rng(devices=devices),
              torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack)):
            run_one_step(g_copy, d_copy, batch if len(batch) > 1 else batch[0],
                         replace(config, amp="off", channels_last=False, compile=False, max_steps=None), steps)
    finally:  # ... so give it back its own run (networks, optimisers, EMA), or the caller would train the copies
        if bound is not None:
            vars(steps).clear()
            vars(steps).update(bound)
    parameters = _parameter_bytes(generator, discriminator)
    trainable = sum(p.numel() * 4 for m in (generator, discriminator) for p in m.parameters() if p.requires_grad)
    return MemoryEstimate(parameters=parameters, optimiser_and_gradients=3 * trainable, activations=meter.peak,
                          data=sum(t.numel() * t.element_size() for t in tensors) if data_bytes is None else data_bytes)


__all__ = ["CUDA_OVERHEAD_BYTES", "MemoryEstimate", "estimate_step_memory"]
