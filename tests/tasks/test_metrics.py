"""The concrete metrics, checked against case files (tests/tasks/metric_cases/<metric>.jsonl).

A case line: {"name", "input", "output", "expected"}. For a per-sample metric ``input``
is one Sample's fields and ``output`` the prediction; for a corpus metric (bleu4)
``input`` is a list of samples, ``output`` the list of predictions and ``expected`` the
corpus score. Expected values were computed by hand (acc, set_f1, char_f1, keyword_f1)
or with the reference implementation (rouge-chinese for ROUGE, sacrebleu for BLEU).
"""

import json
import math
from pathlib import Path

import pytest

import aimed.tasks.metrics  # noqa: F401  (registers the metrics)
from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import METRICS, mean

CASES_DIR = Path(__file__).parent / "metric_cases"
NAMES = ["acc", "set_f1", "rouge1", "rouge2", "rougeL", "bleu4", "char_f1", "keyword_f1"]


def _sample(fields: dict, i: int = 0) -> Sample:
    fields = dict(fields)
    fields["answer"] = tuple(fields.get("answer", ()))
    fields["labels"] = tuple(fields.get("labels", ()))
    return Sample(id=str(i), question="", **fields)


def _cases():
    for path in sorted(CASES_DIR.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                case = json.loads(line)
                yield pytest.param(path.stem, case, id=f"{path.stem}:{n}:{case['name']}")


def _output(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("metric_name,case", list(_cases()))
def test_metric_case(metric_name, case):
    metric = METRICS.get(metric_name)
    if isinstance(case["input"], list):
        values = [metric.sample_fn(_sample(s, i), o) for i, (s, o) in enumerate(zip(case["input"], case["output"]))]
        got, _, n = metric.summarise(values)
        assert n == len(values)
    else:
        output = tuple(case["output"]) if metric_name in ("acc", "set_f1") else case["output"]
        got = metric.sample_fn(_sample(case["input"]), output)
    if case["expected"] is None:
        assert got is None
    else:
        assert got == pytest.approx(case["expected"], abs=1e-6)


def test_all_registered_and_declared():
    for name in NAMES:
        m = METRICS.get(name)
        assert m.higher_is_better is True
        assert m.description
    for name in NAMES:
        assert (CASES_DIR / f"{name}.jsonl").exists(), name


def test_rouge_matches_rouge_chinese_directly():
    import jieba
    from rouge import Rouge

    pred, ref = "患者应低盐饮食，规律服用降压药物。", "建议患者低盐低脂饮食，规律服用降压药，定期监测血压。"
    s = Rouge().get_scores(" ".join(jieba.lcut(pred)), " ".join(jieba.lcut(ref)))[0]
    sample = _sample({"target": ref})
    for name, key in [("rouge1", "rouge-1"), ("rouge2", "rouge-2"), ("rougeL", "rouge-l")]:
        assert METRICS.get(name).sample_fn(sample, pred) == pytest.approx(s[key]["f"], abs=1e-9)


def test_rouge_empty_does_not_raise():
    for name in ("rouge1", "rouge2", "rougeL"):
        assert METRICS.get(name).sample_fn(_sample({"target": "高血压"}), "") == 0.0
        assert METRICS.get(name).sample_fn(_sample({"target": "高血压"}), None) == 0.0
        assert METRICS.get(name).sample_fn(_sample({"target": ""}), "高血压") == 0.0


BLEU_CORPORA = [
    (["高血压是常见的慢性病"], ["高血压是一种常见的慢性疾病"]),
    (["患者应低盐饮食，规律服用降压药物。", "发热三天", "急性心肌梗死"],
     ["建议患者低盐低脂饮食，规律服用降压药，定期监测血压。", "患者发热三天，伴咳嗽", "急性前壁心肌梗死"]),
    (["胸痛 伴 出汗", "aspirin 100mg 每日一次", ""], ["胸痛伴大汗", "阿司匹林100mg每日一次", "胸闷"]),
    (["血压升高", "血压升高伴头痛头晕", "血压"], ["血压明显升高", "血压升高", "血压降低"]),
]


@pytest.mark.parametrize("hyps,refs", BLEU_CORPORA)
def test_bleu4_matches_sacrebleu(hyps, refs):
    sacrebleu = pytest.importorskip("sacrebleu")
    split = lambda t: " ".join(c for c in t if not c.isspace())  # noqa: E731
    want = sacrebleu.corpus_bleu([split(h) for h in hyps], [[split(r) for r in refs]],
                                 tokenize="none", smooth_method="none").score / 100
    metric = METRICS.get("bleu4")
    stats = [metric.sample_fn(_sample({"target": r}), h) for h, r in zip(hyps, refs)]
    assert metric.aggregate(stats) == pytest.approx(want, abs=1e-6)


def test_bleu4_stderr_is_bootstrap_and_json_roundtrips():
    metric = METRICS.get("bleu4")
    hyps, refs = BLEU_CORPORA[1]
    stats = [metric.sample_fn(_sample({"target": r}), h) for h, r in zip(hyps, refs)]
    assert metric.aggregate is not mean
    value, stderr, n = metric.summarise(stats)
    assert n == 3 and math.isfinite(stderr) and stderr >= 0
    # statistics written to JSON and read back (as lists) aggregate the same
    assert metric.aggregate(json.loads(json.dumps(stats))) == pytest.approx(value)
