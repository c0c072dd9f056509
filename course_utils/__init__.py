"""Support package for the course "GANs for medical image synthesis".

Nothing runs on import: every module exposes small functions that the notebooks call.
"""

__version__ = "0.1.0"
