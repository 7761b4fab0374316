"""Benchmarks (`make bench`): each module has a main() that prints its figures and ratios."""
