"""BrainVis EEG encoders (filled in by the encoders issue)."""
