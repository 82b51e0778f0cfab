"""Analyses of trained models and built datasets: the paper's alignment analysis (``align``)."""
