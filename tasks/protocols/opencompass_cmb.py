"""OpenCompass's scoring of CMB (the Chinese medical benchmark), reproduced: ``protocol: opencompass_cmb``.

Source: open-compass/opencompass ``configs/datasets/cmb/cmb_gen_dfb5c4.py`` (what
``cmb_gen.py`` includes): predictions post-processed by ``multiple_select_postprocess``
(``utils/text_postprocessors.py``) and scored by ``AccEvaluator``. Its rules:

* Reading: every distinct character of the output for which Python's ``str.isupper()``
  holds, sorted and joined. ``答案：B`` reads ``B``; ``ACD`` reads ``ACD``; but ``B超提示ATP``
  reads ``ABPT`` and a lower-case ``b`` reads nothing (``""``). Full-width capitals count.
* ``opencompass_cmb_acc``: percent of items whose reading equals the gold answer string
  (HF ``evaluate``'s accuracy on label ids, x 100), standard error of the mean.
* ``opencompass_cmb_no_answer_count``: items whose reading is empty.

The prompt OpenCompass puts to the model (``…不需要做任何分析和解释，直接输出答案选项。``, 10 new
tokens) is its own; this protocol only reads and scores.
"""

from __future__ import annotations

from typing import Optional

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import mean, mean_stderr
from aimed.harness.scoring.protocol import Protocol, register_protocol


def read(sample: Sample, output: Optional[str]) -> str:
    return "".join(sorted({c for c in (output or "") if c.isupper()}))


def score(samples: list[Sample], outputs: list[Optional[str]], readings: list[str]) -> dict:
    correct = [100.0 if r == "".join(s.answer) else 0.0 for s, r in zip(samples, readings)]
    n = len(samples)
    return {"acc": (mean(correct), mean_stderr(correct), n),
            "no_answer_count": (float(sum(not r for r in readings)), float("nan"), n)}


register_protocol(Protocol(
    name="opencompass_cmb", source="open-compass/opencompass configs/datasets/cmb/cmb_gen_dfb5c4.py",
    read=read, score=score, higher_is_better={"acc": True, "no_answer_count": False},
    description="OpenCompass's CMB reading (every capital letter of the output) and accuracy",
))
