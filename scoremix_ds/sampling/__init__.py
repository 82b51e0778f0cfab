"""Sampling: the scheduler table and the ScoreMix sampler (a pure function: tensors in, tensors out)."""
