"""Trainers: the class-conditional generator and the minimal discriminator behind the embedded default."""
