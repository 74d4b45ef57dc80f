"""PromptCBLUE's F1 scores, read from the generated text the way the publisher reads it.

Where the rules were read (michael-wzhu/PromptCBLUE on GitHub):
``src/evaluation/post_generate_process.py`` (``process_generated_results``: how an output
text becomes entities, triples or a label), ``src/evaluation/evaluators.py``
(``calc_info_extract_task_scores``, ``calc_cls_task_scores``) and
``src/evaluation/evaluate.py`` (``calc_scores``: which dataset gets which score). The gold
answers are read from each item's ``target`` by the same rules, as the publisher's
structured gold files are.

Parsing (both the output and the target, line by line on ``\\n``; nothing else normalised):

* NER (``CMeEE-V2``, ``IMCS-V2-NER``): for each entity type ``T`` of the item's
  ``answer_choices`` and each line starting with ``T实体``, the text after ``T实体：`` is
  split on ``，``; every stripped, non-empty piece is an entity ``(T, mention)``. A line whose
  type is not among the item's choices counts for nothing (the publisher's instruction:
  only the types the prompt names may be generated).
* Relation extraction (``CMeIE``, ``CMeIE-V2``): on each line the predicate is the text
  before ``关系的头尾实体对`` from its 3rd character on (past ``具有``), stripped; the prefix
  ``具有{predicate}关系的头尾实体对如下：`` is removed, the rest split on ``。``; each piece
  holding ``，尾实体为`` gives ``(predicate, head, tail)``, head = the part before it without
  ``头实体为``, tail = the part after it without ``尾实体为``, both stripped.
* Classification (``CHIP-CTC``, ``KUAKE-QIC``, ``IMCS-V2-DAC``): the label is the whole
  output, stripped, and is not matched against the choices; an empty output counts as the
  first label of the publisher's list, ``非上述类型``.

Scores (0..1):

* ``cblue_micro_f1``: strict micro-F1 over every item's entities/triples. Per item the
  predicted and gold sets are compared (duplicates count once); a prediction counts only
  when every field matches exactly. The item's value is ``(tp, n_pred, n_gold)`` and the
  corpus score P = ΣTP/Σpred, R = ΣTP/Σgold, F1 = 2PR/(P+R); 0 when ΣTP is 0.
* ``cblue_macro_f1``: macro-F1 over labels, as scikit-learn's ``classification_report``
  (``zero_division=0``) gives it: the labels are every label seen in the gold answers or the
  predictions (so an off-list answer is a label of its own, with F1 0), each label's
  F1 = 2TP/(2TP+FP+FN), and the score is their unweighted mean. The item's value is
  ``(gold label, predicted label)``.

Both are corpus scores, not means, so each item carries its sufficient statistics and the
metric brings its own ``aggregate`` (as ``bleu4`` does): compare and gate pair items by id
and re-aggregate; the standard error is the seeded bootstrap. An item of any other dataset
gets None (the metric does not apply to it).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import Metric, register_metric

from .text import as_text

NER_DATASETS = ("CMeEE-V2", "IMCS-V2-NER")
SPO_DATASETS = ("CMeIE-V2", "CMeIE")
MACRO_DATASETS = ("CHIP-CTC", "KUAKE-QIC", "IMCS-V2-DAC")
EMPTY_LABEL = "非上述类型"  # the first of the publisher's label lists for all three


def dataset_of(sample: Sample) -> str:
    return sample.categories.get("task_dataset", "")


def entity_types(sample: Sample) -> list[str]:
    """The item's ``answer_choices`` (``Sample.labels``)."""
    return list(sample.labels)


def parse_entities(text: str, types: Sequence[str]) -> set[tuple[str, str]]:
    """{(type, mention)} of a NER output, by PromptCBLUE's rules (module docstring)."""
    found = set()
    lines = as_text(text).split("\n")
    for choice in types:
        for piece in lines:
            if piece.startswith(f"{choice}实体"):
                for mention in piece.replace(f"{choice}实体：", "").split("，"):
                    if mention.strip():
                        found.add((choice, mention.strip()))
    return found


def parse_triples(text: str) -> set[tuple[str, str, str]]:
    """{(predicate, head, tail)} of a relation-extraction output, by PromptCBLUE's rules."""
    found = set()
    for line in as_text(text).split("\n"):
        predicate = line.split("关系的头尾实体对")[0][2:].strip()
        line = line.replace(f"具有{predicate}关系的头尾实体对如下：", "")
        for spo in line.split("。"):
            parts = spo.split("，尾实体为")
            if len(parts) < 2:
                continue
            head = parts[0].replace("头实体为", "").strip()
            tail = parts[1].replace("尾实体为", "").strip()
            found.add((predicate, head, tail))
    return found


def label(text: str) -> str:
    """A classification output's label: the stripped text; empty -> 非上述类型."""
    return as_text(text).strip() or EMPTY_LABEL


def extraction_stats(sample: Sample, prediction) -> Optional[tuple[int, int, int]]:
    dataset = dataset_of(sample)
    if dataset in NER_DATASETS:
        types = entity_types(sample)
        pred, gold = parse_entities(prediction, types), parse_entities(sample.target, types)
    elif dataset in SPO_DATASETS:
        pred, gold = parse_triples(prediction), parse_triples(sample.target)
    else:
        return None
    return len(pred & gold), len(pred), len(gold)


def micro_f1(stats: Sequence[Sequence[int]]) -> float:
    """Strict micro-F1 from summed (tp, n_pred, n_gold); 0 when no item has a true positive."""
    if not stats:
        return float("nan")
    tp, n_pred, n_gold = (sum(col) for col in zip(*stats))
    if not tp:
        return 0.0
    p, r = tp / n_pred, tp / n_gold
    return 2 * p * r / (p + r)


def label_pair(sample: Sample, prediction) -> Optional[tuple[str, str]]:
    if dataset_of(sample) not in MACRO_DATASETS:
        return None
    return label(sample.target), label(prediction)


def macro_f1(pairs: Sequence[Sequence[str]]) -> float:
    """Unweighted mean over labels (gold or predicted) of per-label F1 = 2TP/(2TP+FP+FN)."""
    if not pairs:
        return float("nan")
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for gold, pred in pairs:
        if gold == pred:
            tp[gold] += 1
        else:
            fp[pred] += 1
            fn[gold] += 1
    labels = set(tp) | set(fp) | set(fn)
    return sum(2 * tp[x] / (2 * tp[x] + fp[x] + fn[x]) for x in labels) / len(labels)


register_metric(Metric(
    "cblue_micro_f1", extraction_stats, higher_is_better=True, aggregate=micro_f1, kinds=("generation",),
    description="PromptCBLUE NER / relation extraction: strict micro-F1 of the entities or triples "
    "parsed from the output by the publisher's rules (every field must match), 0..1; stderr by bootstrap",
))
register_metric(Metric(
    "cblue_macro_f1", label_pair, higher_is_better=True, aggregate=macro_f1, kinds=("generation",),
    description="PromptCBLUE classification (CHIP-CTC, KUAKE-QIC, IMCS-V2-DAC): macro-F1 over the labels "
    "seen (the stripped output is the label; empty = 非上述类型), 0..1; stderr by bootstrap",
))
