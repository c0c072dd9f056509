"""Experiment protocols: the recipes a notebook runs end to end, built from the package's concepts.

- `augmentation_study`: notebook 04's cross-validated question "does GAN augmentation help a classifier?".
- `segmentation_task`: notebook 07's hippocampus task, split by subject (MNI152 tissue maps offline).
- `objective_comparison`: notebook 08's four GAN objectives over seeds, whose runs notebook 09 loads.
- `domain_classifier`: notebook 03's cached feature network, reused by notebooks 04, 05, 08 and 09.
"""
