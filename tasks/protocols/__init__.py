"""Published evaluation protocols a task spec can name (``protocol: cmexam``), reported beside
the harness's strict metrics. Importing this package registers them all in
``aimed.harness.scoring.protocol.PROTOCOLS``: ``cmexam`` (the CMExam paper's own evaluation
script) and ``opencompass_cmb`` (OpenCompass's CMB configuration). ``_paper_text`` holds the
BLEU/ROUGE implementations those scripts call, reproduced.
"""

from . import cmexam, opencompass_cmb  # noqa: F401  (importing registers them)
