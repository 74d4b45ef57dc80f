"""Loaders, one a publisher format, shared by the tasks that use it.

Importing this package registers them all in ``aimed.harness.plugins.LOADERS``:
``cmexam``, ``cmmlu``, ``csl``, ``medterm``, ``medqa_mcmle``, ``cmb`` (CMB-Exam),
``mlecqa`` (MLEC-QA), ``cmbclin`` (CMB-Clin), ``promptcblue``, ``huatuo26m``, ``cmtmedqa``
and ``table`` (a user's own CSV/JSONL). ``_io`` holds the reading
helpers they share; ``_jsonlist`` reads a file that is one JSON list (CMB, MLEC-QA).
"""

from . import cmb, cmbclin, cmexam, cmmlu, cmtmedqa, csl, huatuo26m, medqa_mcmle, medterm, mlecqa, promptcblue, table  # noqa: F401  (importing registers them)
