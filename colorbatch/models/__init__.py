"""Colorization models (being written)."""
