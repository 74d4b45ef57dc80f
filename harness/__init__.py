"""The AiMed-Eval engine: task registry, model backends, scoring, runs and the CLI.

``harness`` imports none of the other top-level packages; built-in tasks and metrics
arrive as a plugin through the ``aimed.plugins`` entry point (see ``plugins.py``).
"""

__version__ = "0.1.0"
