"""Stages: pure functions over Arrow tables. No file or network I/O here, no Ray (see tests/test_layering.py)."""
