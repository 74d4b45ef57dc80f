"""Metrics named by task specs. Importing this package registers every metric:
acc, set_f1 (choice), rouge1/rouge2/rougeL (overlap), bleu4 (bleu), char_f1, keyword_f1 (f1),
cblue_micro_f1, cblue_macro_f1 (cblue: PromptCBLUE's extraction and classification).
"""

from . import bleu, cblue, choice, f1, overlap  # noqa: F401  (importing registers them)
