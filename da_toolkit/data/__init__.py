"""Data sources and the data module."""
