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
* Normalisation (``CHIP-CDN``): the last line split on ``，``; the stripped, non-empty pieces
  that are among the item's ``answer_choices`` are its terms.
* Finding attributes (``CHIP-MDCFNPC``, ``IMCS-V2-SR``): every line after the first that
  splits on ``：`` into exactly two parts is ``(finding stripped, attribute)``; an attribute
  not among the item's ``answer_choices`` becomes ``不标注`` (MDCFNPC) or
  ``无法根据上下文确定病人是否患有该症状`` (SR).
* Events (``CHIP-CDEE``): every line after the first is one event (a blank line too, as an
  event with every field empty); its ``；``-separated parts starting ``主体词：``,
  ``发生状态：``, ``描述词：`` or ``解剖部位：`` give those fields (the last two split on ``，``
  into lists), missing ones empty; events match when all four fields do.
* Classification (``CHIP-CTC``, ``KUAKE-QIC``, ``IMCS-V2-DAC``, and with weighted F1
  ``CHIP-STS``, ``KUAKE-IR``, ``KUAKE-QQR``, ``KUAKE-QTR``): the label is the whole output,
  stripped, and is not matched against the choices; an empty output counts as the first
  label of the publisher's list for the dataset (``EMPTY_LABELS``). CHIP-STS reads
  ``相同`` as ``是的`` and ``不同`` as ``不是``.

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
* ``cblue_weighted_f1``: the same per-label F1s averaged with the gold counts as weights
  (``classification_report``'s "weighted avg", which ``evaluate.py`` reports for CHIP-STS,
  KUAKE-IR, KUAKE-QQR and KUAKE-QTR under the name ``Micro-F1``).

Both are corpus scores, not means, so each item carries its sufficient statistics and the
metric brings its own ``aggregate`` (as ``bleu4`` does): compare and gate pair items by id
and re-aggregate; the standard error is the seeded bootstrap. An item of any other dataset
gets None (the metric does not apply to it).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Optional, Sequence

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import Metric, register_metric

from .text import as_text

NER_DATASETS = ("CMeEE-V2", "IMCS-V2-NER")
SPO_DATASETS = ("CMeIE-V2", "CMeIE")
# an attribute off the item's choices becomes this (post_generate_process.py)
ATTRIBUTE_DEFAULTS = {"CHIP-MDCFNPC": "不标注", "IMCS-V2-SR": "无法根据上下文确定病人是否患有该症状"}
EVENT_KEYS = ("主体词", "发生状态", "描述词", "解剖部位")
EVENT_LISTS = ("描述词", "解剖部位")
MACRO_DATASETS = ("CHIP-CTC", "KUAKE-QIC", "IMCS-V2-DAC")
WEIGHTED_DATASETS = ("CHIP-STS", "KUAKE-IR", "KUAKE-QQR", "KUAKE-QTR")
EMPTY_LABEL = "非上述类型"  # the first of the publisher's label lists for the three macro ones
# what an empty output counts as: the first label of each list evaluate.py passes
EMPTY_LABELS = {"CHIP-STS": "是的", "KUAKE-IR": "相关", "KUAKE-QQR": "完全一致", "KUAKE-QTR": "完全不匹配或者没有参考价值"}
STS_SYNONYMS = {"相同": "是的", "不同": "不是"}


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


def parse_terms(text: str, choices: Sequence[str]) -> set[str]:
    """CHIP-CDN's normalised terms: the last line's pieces that are among the choices."""
    pieces = (w.strip() for w in as_text(text).split("\n")[-1].split("，"))
    return {w for w in pieces if w and w in choices}


def parse_attributes(text: str, choices: Sequence[str], default: str) -> set[tuple[str, str]]:
    """{(finding, attribute)} of a CHIP-MDCFNPC / IMCS-V2-SR output, by the publisher's rules."""
    found = set()
    for line in as_text(text).split("\n")[1:]:
        parts = line.split("：")
        if len(parts) == 2:
            found.add((parts[0].strip(), parts[1] if parts[1] in choices else default))
    return found


def parse_events(text: str) -> set[tuple[str, ...]]:
    """CHIP-CDEE's events, each the JSON of its four fields (the publisher compares those)."""
    found = set()
    for line in as_text(text).split("\n")[1:]:
        event: dict = {k: [] if k in EVENT_LISTS else "" for k in EVENT_KEYS}
        for part in line.split("；"):
            for key in EVENT_KEYS:
                if part.startswith(f"{key}："):
                    part = part.replace(f"{key}：", "").strip()
                    event[key] = [w.strip() for w in part.split("，") if w.strip()] if key in EVENT_LISTS else part
        found.add(tuple(json.dumps(event[k], ensure_ascii=False) for k in sorted(EVENT_KEYS)))
    return found


def label(text: str, dataset: str = "") -> str:
    """A classification output's label: the stripped text; empty -> the dataset's first label."""
    value = as_text(text).strip()
    if dataset == "CHIP-STS":
        value = STS_SYNONYMS.get(value, value)
    return value or EMPTY_LABELS.get(dataset, EMPTY_LABEL)


def extraction_stats(sample: Sample, prediction) -> Optional[tuple[int, int, int]]:
    dataset = dataset_of(sample)
    if dataset in NER_DATASETS:
        types = entity_types(sample)
        pred, gold = parse_entities(prediction, types), parse_entities(sample.target, types)
    elif dataset in SPO_DATASETS:
        pred, gold = parse_triples(prediction), parse_triples(sample.target)
    elif dataset == "CHIP-CDN":
        pred, gold = parse_terms(prediction, sample.labels), parse_terms(sample.target, sample.labels)
    elif dataset in ATTRIBUTE_DEFAULTS:
        default = ATTRIBUTE_DEFAULTS[dataset]
        pred = parse_attributes(prediction, sample.labels, default)
        gold = parse_attributes(sample.target, sample.labels, default)
    elif dataset == "CHIP-CDEE":
        pred, gold = parse_events(prediction), parse_events(sample.target)
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
    dataset = dataset_of(sample)
    if dataset not in MACRO_DATASETS:
        return None
    return label(sample.target, dataset), label(prediction, dataset)


def weighted_label_pair(sample: Sample, prediction) -> Optional[tuple[str, str]]:
    dataset = dataset_of(sample)
    if dataset not in WEIGHTED_DATASETS:
        return None
    return label(sample.target, dataset), label(prediction, dataset)


def _label_f1s(pairs: Sequence[Sequence[str]]) -> tuple[dict[str, float], Counter]:
    """Per-label F1 = 2TP/(2TP+FP+FN) over the labels seen (gold or predicted), and the gold counts."""
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
    return {x: 2 * tp[x] / (2 * tp[x] + fp[x] + fn[x]) for x in labels}, Counter(gold for gold, _ in pairs)


def macro_f1(pairs: Sequence[Sequence[str]]) -> float:
    """Unweighted mean over labels (gold or predicted) of per-label F1."""
    if not pairs:
        return float("nan")
    f1s, _ = _label_f1s(pairs)
    return sum(f1s.values()) / len(f1s)


def weighted_f1(pairs: Sequence[Sequence[str]]) -> float:
    """Mean of per-label F1 weighted by each label's gold count."""
    if not pairs:
        return float("nan")
    f1s, support = _label_f1s(pairs)
    return sum(f1s[x] * n for x, n in support.items()) / len(pairs)


register_metric(Metric(
    "cblue_micro_f1", extraction_stats, higher_is_better=True, aggregate=micro_f1, kinds=("generation",),
    description="PromptCBLUE NER / relation, event, attribute extraction, normalisation: strict micro-F1 of the entities or triples "
    "parsed from the output by the publisher's rules (every field must match), 0..1; stderr by bootstrap",
))
register_metric(Metric(
    "cblue_macro_f1", label_pair, higher_is_better=True, aggregate=macro_f1, kinds=("generation",),
    description="PromptCBLUE classification (CHIP-CTC, KUAKE-QIC, IMCS-V2-DAC): macro-F1 over the labels "
    "seen (the stripped output is the label; empty = 非上述类型), 0..1; stderr by bootstrap",
))
register_metric(Metric(
    "cblue_weighted_f1", weighted_label_pair, higher_is_better=True, aggregate=weighted_f1, kinds=("generation",),
    description="PromptCBLUE CHIP-STS, KUAKE-IR, KUAKE-QQR, KUAKE-QTR: per-label F1 averaged with gold counts as "
    "weights (the publisher's 'weighted avg'; empty output = the dataset's first label), 0..1; stderr by bootstrap",
))
