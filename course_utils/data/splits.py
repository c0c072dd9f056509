"""Splits that keep held-out data honest: by subject, and by blocks of slices with a gap between them.

Used by notebooks 05, 06 (paired slices) and 07 (segmentation subjects); `split_report` checks a split for
shared items and, for slices, for neighbours across splits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

SPLIT_PATTERN: tuple[str, ...] = ("train", "train", "train", "val", "test")
BLOCK = 8  # consecutive slices per split block; the last slice of each block is dropped as a gap


def split_cases(cases: Sequence[str], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                seed: int = 0) -> dict[str, list[str]]:
    """Subjects shuffled with `seed` and cut into train / val / test (no subject in two splits)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative shares summing to 1, e.g. (0.7, 0.1, 0.2); got {fractions}.")
    if len(set(cases)) != len(cases):
        raise ValueError("cases contains duplicates; pass each subject once.")
    if len(cases) < 3:
        raise ValueError(f"need at least 3 subjects for train / val / test; got {len(cases)}.")
    order = np.random.default_rng(seed).permutation(len(cases))
    shuffled = [cases[i] for i in order]
    n_test = max(1, round(fractions[2] * len(cases)))
    n_val = max(1, round(fractions[1] * len(cases)))
    n_train = len(cases) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{len(cases)} subjects leave none for training with fractions {fractions}.")
    return {"train": sorted(shuffled[:n_train]), "val": sorted(shuffled[n_train:n_train + n_val]),
            "test": sorted(shuffled[n_train + n_val:])}


def gapped_slice_splits(count: int) -> np.ndarray:
    """Split name per slice: blocks of consecutive slices cycle train/train/train/val/test, one 'gap' slice each.

    No held-out slice is the direct neighbour of a training slice (neighbouring 1 mm slices are nearly identical).
    """
    names = np.array([SPLIT_PATTERN[(i // BLOCK) % len(SPLIT_PATTERN)] for i in range(count)], dtype=object)
    names[BLOCK - 1 :: BLOCK] = "gap"
    return names


def consecutive_runs(indices: torch.Tensor) -> torch.Tensor:
    """Run number `(N,)` per slice of sorted slice `indices` `(N,)`: consecutive indices share a run.

    Within one split of `gapped_slice_splits` each run is one block of neighbouring slices, the unit to resample
    in a bootstrap over a single volume (neighbouring slices are nearly the same image, not independent samples).
    """
    indices = torch.as_tensor(indices).flatten()
    if len(indices) and not bool((indices[1:] > indices[:-1]).all()):
        raise ValueError("slice indices must be sorted and distinct, as the splits give them.")
    breaks = (indices[1:] - indices[:-1]) > 1
    return torch.cat([torch.zeros(min(len(indices), 1), dtype=torch.long), torch.cumsum(breaks.long(), 0)])


def split_report(groups: dict[str, torch.Tensor], kind: str = "slice") -> dict[str, int]:
    """Overlaps and neighbour pairs between splits: {'shared': n, 'neighbours': m} (both must be 0)."""
    shared, neighbours = 0, 0
    names = list(groups)
    for i, first in enumerate(names):
        a = set(groups[first].tolist())
        for second in names[i + 1:]:
            b = set(groups[second].tolist())
            shared += len(a & b)
            if kind == "slice":
                neighbours += sum(1 for index in a if index - 1 in b or index + 1 in b)
    return {"shared": shared, "neighbours": neighbours}
