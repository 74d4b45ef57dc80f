"""Metrics named by task specs."""
