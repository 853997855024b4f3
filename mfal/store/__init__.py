"""mfal.store."""
