"""Network architectures only (one module per architecture); how they are trained lives in `course_utils.training`.

`dcgan` (notebook 02): `DCGANGenerator`, `DCGANDiscriminator`, `init_dcgan_weights`.
`domain_classifier` (notebook 03): `DomainClassifier`, the feature network of the GAN metrics.
`conditional` (notebook 04): `ConditionalGenerator`, `ProjectionDiscriminator`.
`classifier` (notebook 04): `build_resnet18` (MedMNIST's 28 px ResNet-18).
`srgan` (notebook 05): `SRResNetGenerator`, `SRGANDiscriminator`; `perceptual`: VGG and domain feature maps.
`unet`, `critics` (notebooks 06, 07): `UNet`, `PatchGANCritic`.
`dcgan3d` (notebook 09): `DCGANGenerator3D`, `DCGANDiscriminator3D` for MedMNIST 3-D volumes.
`denoiser` (notebook 10): `TimeConditionedUNet`, the network of the diffusion and flow-matching models.
"""

from course_utils.models.conditional import ConditionalGenerator, ProjectionDiscriminator
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from course_utils.models.dcgan3d import DCGANDiscriminator3D, DCGANGenerator3D
from course_utils.models.denoiser import TimeConditionedUNet

__all__ = [
    "ConditionalGenerator", "DCGANDiscriminator", "DCGANDiscriminator3D", "DCGANGenerator",
    "DCGANGenerator3D", "ProjectionDiscriminator", "TimeConditionedUNet", "init_dcgan_weights",
]
