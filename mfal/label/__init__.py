"""mfal.label."""
