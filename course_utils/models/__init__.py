"""Network architectures for the course's GANs (one module per architecture).

`dcgan` (notebook 02): `DCGANGenerator`, `DCGANDiscriminator`, `init_dcgan_weights`.
"""

from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "init_dcgan_weights"]
