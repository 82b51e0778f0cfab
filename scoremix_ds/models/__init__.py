"""Model adapters: the recognition backbones ("discriminators") that embed real images for class centres."""
