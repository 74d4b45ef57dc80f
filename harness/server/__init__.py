"""The OpenAI-compatible server of ``aimed-eval serve``."""
