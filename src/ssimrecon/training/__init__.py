"""Stage 6: slice dataset, settings, resumable state, training step and loop."""
