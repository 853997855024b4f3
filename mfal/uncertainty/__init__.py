"""mfal.uncertainty."""
