"""Does a 3-D GAN learn AdrenalMNIST3D (28³ binary masks) in a few CPU minutes? Train one recipe, measure it.

Trains `DCGANGenerator3D` against `DCGANDiscriminator3D` with the course loop `train_gan` on the training
split, then draws as many volumes as the held-out split has and compares their shapes with the held-out real
ones (`course_utils.metrics.shapes3d`): foreground fraction, volume, surface area and connected components
(mean, sd, KS statistic), a diversity row, and the nearest-train Dice of generated volumes against that of
held-out real volumes (the value a good model approaches). `--baselines` adds what no learning gives: the
untrained generator, random smooth blobs and one mean shape repeated. Times are those of the training call on
`--threads` threads (default 1): wall clock and this process's CPU time (they differ when the core is shared).

Usage (from the repository root, with COURSE_DATA_DIR set):

    python benchmarks/volume3d_recipe.py --recipe final             # the recipe proposed for the cpu profile
    python benchmarks/volume3d_recipe.py --quick                    # a tiny run: checks that everything runs
    python benchmarks/volume3d_recipe.py --recipe course_cpu --baselines --json out.json
    python benchmarks/volume3d_recipe.py --recipe final --set num_epochs=10 --set lr_d=1e-4 --seed 1
    python benchmarks/volume3d_recipe.py --recipe final --size 64 --device cuda --set num_epochs=100  # gpu

`--quick` trains one epoch on 64 volumes and scores 32: it checks the code path, its numbers mean nothing.
Reading the verdict: foreground fraction and volume means within a factor 1.5 of the held-out real ones and
small KS statistics (0 = same distribution, 1 = disjoint); nearest-train Dice near the held-out real value
(far above the random-blob baseline, about 0.09); the diversity row (nearest_other_dice) not near 1 (mode
collapse).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_utils.data import load_medmnist
from course_utils.data.imageset import to_uint8
from course_utils.losses import d_loss_hinge, d_loss_minimax, g_loss_hinge, g_loss_non_saturating
from course_utils.metrics.shapes3d import (
    NEAREST_DICE,
    compare_shape_distributions,
    format_shape_table,
    nearest_real_dice,
    random_blob_masks,
)
from course_utils.models.dcgan3d import DCGANDiscriminator3D, DCGANGenerator3D, prior_output_bias
from course_utils.training import DCGANSteps, TrainConfig, train_gan

DATASET = "adrenalmnist3d"
SIZES = (28, 64)  # MedMNIST 3-D sizes: 28 (cpu profile), 64 (gpu profile)


@dataclass(frozen=True)
class Recipe:
    """Every setting of one 3-D GAN run (constructor and TrainConfig arguments)."""

    g_width: int = 8
    d_width: int = 8
    latent_dim: int = 64
    batch_size: int = 16
    num_epochs: int = 10
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    loss: str = "non-saturating"  # or "hinge"
    spectral_norm: bool = False  # in the discriminator (batch norm off with it)
    output_bias: float | str = 0.0  # the generator's last bias before tanh; "prior": prior_output_bias(data)
    instance_noise: float = 0.0  # sd of Gaussian noise added to every volume the discriminator sees
    hard: bool = False  # the discriminator sees thresholded volumes (straight-through gradient to G)
    resize_layers: int = 0  # the last n upsampling layers as nearest upsample + 3³ conv (resize-convolution)
    train_fraction: float = 1.0

    def train_config(self, seed: int) -> TrainConfig:
        """The TrainConfig of this recipe."""
        return TrainConfig(num_epochs=self.num_epochs, batch_size=self.batch_size, lr_g=self.lr_g,
                           lr_d=self.lr_d, betas=(self.beta1, self.beta2), latent_dim=self.latent_dim,
                           seed=seed, checkpoint_every=0, snapshot_every=0, num_samples=1, log_every=50)


RECIPES: dict[str, Recipe] = {
    "course_cpu": Recipe(),  # the cpu profile of the 3-D GAN (then in notebook 08) before this study
    # the smallest fix: the course's cpu recipe with the generator's output bias at the foreground prior
    "minimal": Recipe(output_bias="prior"),
    # the proposal for the cpu profile: width 16, batch 16, 20 epochs, output bias at the foreground prior
    "final": Recipe(g_width=16, d_width=16, batch_size=16, num_epochs=20, output_bias="prior"),
}


class InstanceNoise:
    """Gaussian noise of sd `sigma` added to every volume the discriminator sees (real and fake alike)."""

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        return images + self.sigma * noise

    def __repr__(self) -> str:
        return f"InstanceNoise({self.sigma:g})"


class HardThreshold:
    """The discriminator sees every volume thresholded at 0 (±1, as the masks are and as they are scored).

    Straight-through estimator (Bengio et al., 2013): the forward pass uses sign(x), the backward pass passes
    the gradient to x unchanged, so the generator still learns. Real masks (already ±1) pass unchanged.
    """

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        hard = torch.where(images > 0, 1.0, -1.0).to(images.dtype)
        return images + (hard - images).detach()

    def __repr__(self) -> str:
        return "HardThreshold()"


class Chain:
    """Several augment functions, one after the other."""

    def __init__(self, *functions) -> None:
        self.functions = functions

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for function in self.functions:
            images = function(images, generator)
        return images

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.functions))


def build(recipe: Recipe, seed: int, foreground: float,
          size: int = 28) -> tuple[DCGANGenerator3D, DCGANDiscriminator3D, DCGANSteps]:
    """Networks and training steps of `recipe` for size³ volumes, initialised from `seed`.

    `foreground`: the training masks' foreground fraction, for `output_bias="prior"`.
    """
    torch.manual_seed(seed)
    if recipe.output_bias == "prior":
        output_bias = prior_output_bias(foreground)
    elif isinstance(recipe.output_bias, int | float):
        output_bias = float(recipe.output_bias)
    else:
        raise ValueError(f"output_bias must be a number or 'prior'; got {recipe.output_bias!r}.")
    generator = DCGANGenerator3D(recipe.latent_dim, size, 1, recipe.g_width, output_bias=output_bias)
    discriminator = DCGANDiscriminator3D(size, 1, recipe.d_width, spectral_norm=recipe.spectral_norm)
    if recipe.resize_layers:
        layers = list(generator.net)
        strided = [i for i, m in enumerate(layers)
                   if isinstance(m, torch.nn.ConvTranspose3d) and m.stride[0] == 2]
        for i in strided[-recipe.resize_layers:]:
            old = layers[i]
            conv = torch.nn.Conv3d(old.in_channels, old.out_channels, 3, padding=1, bias=old.bias is not None)
            torch.nn.init.normal_(conv.weight, 0.0, 0.02)
            if conv.bias is not None:
                torch.nn.init.constant_(conv.bias, float(old.bias.detach()[0]))
            layers[i] = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2, mode="nearest"), conv)
        generator.net = torch.nn.Sequential(*layers)
    functions = [*([HardThreshold()] if recipe.hard else []),
                 *([InstanceNoise(recipe.instance_noise)] if recipe.instance_noise > 0 else [])]
    augment = None if not functions else functions[0] if len(functions) == 1 else Chain(*functions)
    if recipe.loss == "hinge":
        steps = DCGANSteps(d_loss_hinge, g_loss_hinge, outputs_are_logits=False, augment=augment)
    elif recipe.loss == "non-saturating":
        steps = DCGANSteps(d_loss_minimax, g_loss_non_saturating, augment=augment)
    else:
        raise ValueError(f"loss must be 'non-saturating' or 'hinge'; got {recipe.loss!r}.")
    return generator, discriminator, steps


@torch.no_grad()
def sample(generator: DCGANGenerator3D, count: int, seed: int) -> torch.Tensor:
    """`count` volumes uint8 (count, 1, S, S, S) from fixed noise, generator in eval mode (as notebook 09)."""
    generator.eval()
    z = torch.randn(count, generator.latent_dim, generator=torch.Generator().manual_seed(seed + 7000))
    device = next(generator.parameters()).device
    volumes = torch.cat([to_uint8(generator(chunk.to(device))) for chunk in z.split(64)])
    generator.train()
    return volumes


def mean_shape(train: torch.Tensor, count: int) -> torch.Tensor:
    """The voxel-wise mean training mask thresholded to the mean training volume, repeated (collapse)."""
    mean = (train[:, 0] > 127).float().mean(0)  # (S, S, S)
    voxels = int((train > 127).sum() / len(train))
    level = mean.flatten().sort(descending=True).values[voxels - 1]
    return ((mean >= level).to(torch.uint8) * 255)[None, None].expand(count, 1, -1, -1, -1).contiguous()


def measure(name: str, generated: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor,
            wall: float | None = None, settings: dict[str, Any] | None = None, lenient: bool = False
            ) -> dict[str, Any]:
    """Shape comparison of `generated` with `held_out`, printed as a table and returned as numbers."""
    table = compare_shape_distributions(generated, held_out, train=train, held_out=held_out)
    fg_25 = float((generated > 25).float().mean())  # the old notebook 08 threshold (tanh > -0.8)
    print(f"\n== {name}" + (f": {wall:.0f} s training" if wall is not None else ""))
    print(format_shape_table(table))
    row = {"name": name, "wall_s": wall, "settings": settings, "foreground_gt25": fg_25}
    for stat, comparison in table.items():
        row[stat] = {"real_mean": comparison.real_mean, "real_sd": comparison.real_sd,
                     "gen_mean": comparison.generated_mean, "gen_sd": comparison.generated_sd,
                     "ratio": comparison.ratio, "ks": comparison.ks_statistic}
    fg = table["foreground_fraction"]
    row["verdict"] = {
        "foreground_within_1.5x": fg.within_factor(1.5),
        "max_ks_fg_volume_surface": max(table[s].ks_statistic for s in ("foreground_fraction", "volume",
                                                                           "surface_area")),
        "dice_gen_over_held_out": table[NEAREST_DICE].generated_mean / table[NEAREST_DICE].real_mean,
    }
    verdict = row["verdict"]
    print(f"verdict: foreground within 1.5x: {verdict['foreground_within_1.5x']}; largest KS "
          f"(foreground, volume, surface) {verdict['max_ks_fg_volume_surface']:.2f}; nearest-train Dice "
          f"generated / held-out {verdict['dice_gen_over_held_out']:.2f}; foreground at >25: {fg_25:.2%}")
    return row


def parse_value(text: str) -> Any:
    """'1e-4' -> 1e-4, 'true' -> True, 'hinge' -> 'hinge'."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="final", choices=sorted(RECIPES))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one field of the recipe, e.g. --set num_epochs=5")
    parser.add_argument("--quick", action="store_true", help="a tiny run (1 epoch, 64 volumes): does it run?")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=28, choices=SIZES, help="volume side (64: gpu variant)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or e.g. cuda for the 64³ variant")
    parser.add_argument("--held-out", default="test", choices=("val", "test"))
    parser.add_argument("--baselines", action="store_true", help="also measure the no-learning baselines")
    parser.add_argument("--json", help="append the numbers as one JSON line to this file")
    parser.add_argument("--save", help="save the generated volumes (uint8) to this .npy file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = parse_value(value)
    recipe = dataclasses.replace(RECIPES[args.recipe], **overrides)
    if args.quick:
        recipe = dataclasses.replace(recipe, num_epochs=1)

    train = load_medmnist(DATASET, "train", size=args.size).images  # (1188, 1, S, S, S) uint8 in {0, 255}
    held_out = load_medmnist(DATASET, args.held_out, size=args.size).images
    if args.quick:
        train, held_out = train[:64], held_out[:32]
    data = train[: max(recipe.batch_size, round(len(train) * recipe.train_fraction))]
    print(f"train {tuple(train.shape)}, held-out ({args.held_out}) {tuple(held_out.shape)}; "
          f"{args.threads} thread(s); recipe {args.recipe}: {recipe}")
    floor = nearest_real_dice(held_out, train)
    print(f"floor: nearest-train Dice of held-out real volumes {floor.mean():.3f} ± {floor.std(ddof=1):.3f}")

    rows = []
    fg = float((data > 127).float().mean())  # foreground fraction of the training masks
    generator, discriminator, steps = build(recipe, args.seed, fg, args.size)
    generator, discriminator = generator.to(args.device), discriminator.to(args.device)
    print(f"training foreground fraction {fg:.4f}; generator output bias {generator.output_bias:.3f}")
    if args.baselines:
        count = len(held_out)
        untrained = sample(generator, count, args.seed)
        rows.append(measure("baseline: untrained generator", untrained, train, held_out))
        rows.append(measure("baseline: random blobs", random_blob_masks(count, args.size, fg, args.seed), train,
                            held_out))
        rows.append(measure("baseline: one mean shape", mean_shape(train, count), train, held_out))
    started, started_cpu = time.perf_counter(), time.process_time()
    config = recipe.train_config(args.seed)
    result = train_gan(generator, discriminator, data, config, steps=steps, progress=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(f"training: {wall:.0f} s wall, {cpu:.0f} s CPU time of this process ({args.threads} thread(s); "
          "wall above CPU time means the core was shared)")
    history = {k: [round(v, 3) for v in values] for k, values in result.history.items()}
    print(f"history (per epoch): {history}")
    generated = sample(generator, len(held_out), args.seed)
    if args.save:
        np.save(args.save, generated.numpy())
    settings = {"recipe": args.recipe, **dataclasses.asdict(recipe), "seed": args.seed,
                "threads": args.threads, "held_out": args.held_out, "quick": args.quick, "size": args.size,
                "device": args.device}
    row = measure(f"{args.recipe} {overrides or ''}", generated, train, held_out, wall, settings)
    row["history_last"] = {k: v[-1] for k, v in history.items()}
    row["cpu_s"] = cpu
    rows.append(row)
    if args.json:
        with open(args.json, "a") as handle:
            for item in rows:
                handle.write(json.dumps(item, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                                        else str(v)) + "\n")


if __name__ == "__main__":
    main()
