"""Image augmentation: `classic` (flips, shifts, intensity; notebook 04) and `diffaugment` (differentiable, for
GAN training on small data; notebook 08)."""
