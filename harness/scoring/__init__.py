"""Scoring lives apart from task definitions: metrics, answer choice and extraction, and the
registry of published protocols (a benchmark's own reading and metrics, reported beside ours)."""
