"""Trainers: the class-conditional generator, the recognition network (Partial FC heads), checkpoints, the model card."""
