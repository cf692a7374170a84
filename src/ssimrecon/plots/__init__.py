"""Figures: the mask, training curves, Figure 2."""
