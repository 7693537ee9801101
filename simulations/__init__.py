"""Simulations and benchmarks that reproduce seeds/000 §4 with the real code paths."""
