"""Training: the adversarial loop (`loop`), every training step (`steps`) and supervised training (`supervised`).

- `loop.train_gan` runs any `GANSteps` with checkpoints, exact resume, snapshots and a NaN guard (notebook 02).
- `steps`: `DCGANSteps` (02, 08), `ConditionalGANSteps` (04), `PairedSteps` (05, 06), `SegmentationSteps` (07),
  `DenoiserSteps` (10: diffusion and flow matching, with `diffusion` and `flow_matching`).
- `supervised`: one loop for the domain classifier (03) and the ResNet-18 (04); pixel-loss pretraining (05, 06).
"""

from course_utils.training.loop import (
    AMP_MODES,
    CHECKPOINT_NAME,
    TrainConfig,
    TrainingDivergedError,
    TrainingInterrupted,
    TrainingResult,
    assert_same_update,
    batch_order,
    resolve_amp,
    run_one_step,
    train_gan,
)
from course_utils.training.steps import (
    ConditionalGANSteps,
    DCGANSteps,
    DenoiserSteps,
    GANSteps,
    PairedSteps,
    SegmentationSteps,
    StepContext,
)

__all__ = [
    "AMP_MODES", "CHECKPOINT_NAME", "ConditionalGANSteps", "DCGANSteps", "DenoiserSteps", "GANSteps", "PairedSteps",
    "SegmentationSteps", "StepContext", "TrainConfig", "TrainingDivergedError", "TrainingInterrupted",
    "TrainingResult", "assert_same_update", "batch_order", "resolve_amp", "run_one_step", "train_gan",
]
