"""Network architectures for the course's GANs (one module per architecture).

`dcgan` (notebook 02): `DCGANGenerator`, `DCGANDiscriminator`, `init_dcgan_weights`.
`dcgan3d` (notebook 08): `DCGANGenerator3D`, `DCGANDiscriminator3D` for MedMNIST 3-D volumes.
"""

from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from course_utils.models.dcgan3d import DCGANDiscriminator3D, DCGANGenerator3D

__all__ = ["DCGANDiscriminator", "DCGANDiscriminator3D", "DCGANGenerator", "DCGANGenerator3D", "init_dcgan_weights"]
