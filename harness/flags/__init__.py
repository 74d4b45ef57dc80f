"""Command-line flags shared by the CLI (``cli/``) and the web demos (``webui/``): the model
flags of the original AiMed tools, the engine flags, the generation flags and the argparse
types that check them. Here rather than in ``cli/`` so that the web demos read the same
flags without importing the CLI (and the CLI, which starts them, without a cycle)."""
