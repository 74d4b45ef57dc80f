"""Scoring lives apart from task definitions: metrics, answer choice and extraction."""
