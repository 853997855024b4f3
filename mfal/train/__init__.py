"""mfal.train."""
