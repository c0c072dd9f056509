"""Network architectures for the course's GANs (one module per architecture).

`dcgan` (notebook 02): `DCGANGenerator`, `DCGANDiscriminator`, `init_dcgan_weights`.
`dcgan3d` (notebook 08): `DCGANGenerator3D`, `DCGANDiscriminator3D` for MedMNIST 3-D volumes.
`conditional` (notebook 04): `ConditionalGenerator`, `ProjectionDiscriminator`, `ConditionalGANSteps`.
`classifier` (notebook 04): `build_resnet18` (MedMNIST's 28 px ResNet-18) and `train_classifier`.
"""

from course_utils.models.conditional import ConditionalGANSteps, ConditionalGenerator, ProjectionDiscriminator
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from course_utils.models.dcgan3d import DCGANDiscriminator3D, DCGANGenerator3D

__all__ = [
    "ConditionalGANSteps", "ConditionalGenerator", "DCGANDiscriminator", "DCGANDiscriminator3D", "DCGANGenerator",
    "DCGANGenerator3D", "ProjectionDiscriminator", "init_dcgan_weights",
]
