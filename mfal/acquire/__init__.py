"""mfal.acquire."""
