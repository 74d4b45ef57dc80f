"""The `aimed-eval` command line."""
