"""Benchmarks behind `mfal bench ...`."""
