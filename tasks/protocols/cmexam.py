"""The CMExam paper's own evaluation, reproduced: ``protocol: cmexam``.

Source: williamliujl/CMExam ``src/evaluation/evaluate_lora_result.py`` (its answer reading
and metrics), with the BLEU/ROUGE it imports (see ``_paper_text``). That script reads a CSV
of model outputs with pandas; this module computes what it prints, on the same outputs:

* Reading (``read``): an output that pandas reads back as missing (empty, ``nan``, ``NA``,
  ``None``, ... : ``PANDAS_NA``) reads ``无答案``. If the output contains ``解释`` only its
  first line is read (the answer line), else all of it. Every option whose letter, or the
  first word of whose text, occurs anywhere in that text is chosen, in option order, joined
  (``AB``); none: ``无答案``. So ``答案: B`` reads ``B``, but ``A不对，选B`` reads ``AB`` and any
  ``D`` in ``DNA`` counts: this is the paper's reading, not a careful one.
* ``cmexam_acc``: percent of items whose reading equals the gold answer string (a no-answer
  is wrong); standard error of the mean.
* ``cmexam_weighted_precision`` / ``_recall`` / ``_f1``: sklearn's
  ``precision_recall_fscore_support(gold, read, average="weighted")`` with answer strings as
  class labels (``A``, ``ABD``, ``无答案``): per-label P, R, F (0 where undefined) averaged with
  the number of gold items of each label as weights; fractions 0..1, bootstrap errors.
* ``cmexam_no_answer_count``: items read as ``无答案``.
* On the items that have a reference explanation (``Explanation``): the predicted
  explanation is the text between the first and the second ``解释:`` (ASCII colon), stripped,
  or the whole output when there is none (``无答案`` when missing). Characters are the
  tokens: ``cmexam_bleu1`` and ``cmexam_bleu4`` are corpus BLEU over the non-space
  characters, ``cmexam_rouge1/2/L`` the mean ROUGE F over items on ``" ".join(text).split(" ")``
  (how the script's ROUGE splits its input), all x 100 as printed.

The generate-mode prompt of ``tasks/specs/cmexam_explain.yaml`` asks for the answer line and
the explanation line (``答案: …`` / ``解释: …``), as the paper's prompts do.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import bootstrap_stderr, mean, mean_stderr
from aimed.harness.scoring.protocol import Protocol, register_protocol

from ._paper_text import bleu_stats, corpus_bleu, rouge_l, rouge_n

NO_ANSWER = "无答案"
# The strings pandas.read_csv reads as a missing value by default (its STR_NA_VALUES).
PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                       "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
EXPLANATION_MARK = "解释:"


def missing(value: Optional[str]) -> bool:
    """True when the paper's script, reading its CSV with pandas, would see no value."""
    return value is None or value in PANDAS_NA


def gold(sample: Sample) -> str:
    return "".join(sample.answer)


def read(sample: Sample, output: Optional[str]) -> str:
    """The answer string the paper's script reads from one output (see the module doc)."""
    if missing(output):
        return NO_ANSWER
    text = output.split("\n")[0].strip() if "解释" in output else output
    chosen = [letter for letter, body in sample.options.items()
              if letter in text or _first_word(body) in text]
    return "".join(chosen) if chosen else NO_ANSWER


def _first_word(body: str) -> str:
    # the script splits each "A 原发病" option line on whitespace and keeps the second piece
    words = body.split()
    return words[0] if words else body


def explanation(output: Optional[str]) -> str:
    """The predicted explanation the paper's script takes from one output."""
    if missing(output):
        return NO_ANSWER
    if EXPLANATION_MARK not in output:
        return output
    return output.split(EXPLANATION_MARK)[1].strip()


def weighted_prf(golds: Sequence[str], reads: Sequence[str]) -> tuple[float, float, float]:
    """sklearn's weighted precision, recall and F1 over string labels (see the module doc)."""
    support, predicted = Counter(golds), Counter(reads)
    hits = Counter(g for g, r in zip(golds, reads) if g == r)
    p = r = f = 0.0
    for label, n in support.items():  # labels no gold item has weigh 0
        tp = hits[label]
        p += n * (tp / predicted[label] if predicted[label] else 0.0)
        r += n * tp / n
        f += n * 2 * tp / (n + predicted[label])
    total = len(golds)
    return p / total, r / total, f / total


def bleu_tokens(text: str) -> list[str]:
    return " ".join(text).split()  # the script's " ".join(list(s)).split(): every non-space character


def rouge_tokens(text: str) -> list[str]:
    return " ".join(text).split(" ")  # its ROUGE splits on single spaces: a space yields empty tokens


def score(samples: list[Sample], outputs: list[Optional[str]], readings: list[str]) -> dict:
    n = len(samples)
    golds = [gold(s) for s in samples]
    correct = [100.0 if r == g else 0.0 for r, g in zip(readings, golds)]
    pairs = list(zip(golds, readings))

    def prf(i):
        return lambda items: weighted_prf([g for g, _ in items], [r for _, r in items])[i]

    precision, recall, f1 = weighted_prf(golds, readings)
    out = {
        "acc": (mean(correct), mean_stderr(correct), n),
        "weighted_precision": (precision, bootstrap_stderr(prf(0), pairs), n),
        "weighted_recall": (recall, bootstrap_stderr(prf(1), pairs), n),
        "weighted_f1": (f1, bootstrap_stderr(prf(2), pairs), n),
        "no_answer_count": (float(sum(r == NO_ANSWER for r in readings)), float("nan"), n),
    }
    explained = [(s.explanation, explanation(o)) for s, o in zip(samples, outputs) if not missing(s.explanation)]
    if explained:
        out.update(_explanation_scores(explained))
    return out


def _explanation_scores(pairs: list[tuple[str, str]]) -> dict:
    k = len(pairs)
    stats = [bleu_stats(bleu_tokens(ref), bleu_tokens(hyp)) for ref, hyp in pairs]
    out = {f"bleu{order}": (corpus_bleu(stats, order),
                            bootstrap_stderr(lambda items, o=order: corpus_bleu(items, o), stats), k)
           for order in (1, 4)}
    split = [(rouge_tokens(hyp), rouge_tokens(ref)) for ref, hyp in pairs]
    for name, fn in (("rouge1", lambda h, r: rouge_n(h, r, 1)), ("rouge2", lambda h, r: rouge_n(h, r, 2)),
                     ("rougeL", rouge_l)):
        values = [100.0 * fn(h, r) for h, r in split]
        out[name] = (mean(values), mean_stderr(values), k)
    return out


register_protocol(Protocol(
    name="cmexam", source="williamliujl/CMExam src/evaluation/evaluate_lora_result.py",
    read=read, score=score,
    higher_is_better={"acc": True, "weighted_precision": True, "weighted_recall": True, "weighted_f1": True,
                      "no_answer_count": False, "bleu1": True, "bleu4": True, "rouge1": True, "rouge2": True,
                      "rougeL": True},
    description="the CMExam paper's answer reading, accuracy, weighted P/R/F1 and explanation BLEU/ROUGE",
))

__all__ = ["read", "score", "explanation", "weighted_prf", "missing", "NO_ANSWER", "PANDAS_NA"]
