"""mfal.explore."""
