"""Published protocols: the CMExam paper's evaluation and OpenCompass's CMB scoring.

The ``cmexam`` protocol is held against an independent re-implementation written here from
the paper's script (williamliujl/CMExam src/evaluation/evaluate_lora_result.py): the outputs
go through a real pandas CSV round trip, as that script reads them, the reading is the
script's, the weighted P/R/F1 are sklearn's own, BLEU and ROUGE are written out with a plain
LCS table. Hand-worked cases pin the reading rules and the metric formulas.
"""

from __future__ import annotations

import io
import math
import random
from collections import Counter

import pytest

import aimed.tasks  # noqa: F401  (registers the protocols)
from aimed.harness.scoring.protocol import PROTOCOLS
from aimed.harness.scoring.score import score_record, summarise
from aimed.harness.taskregistry import resolve_tasks
from aimed.harness.taskspec import DataSpec
from aimed.tasks.loaders.cmexam import load_cmexam
from aimed.tasks.protocols import cmexam
from aimed.tasks.protocols._paper_text import lcs_length

from protocol_outputs import OUTPUT_FORMATS, outputs_for

OPTS = {"A": "原发病", "B": "出血部位", "C": "出血量", "D": "在胃内停留时间", "E": "以上均非"}


# ------------------------------------------------------------------ the reading, by hand

READINGS = [  # (output, expected reading), worked out from the script's rules
    ("答案: B 出血部位. \n 解释: 出血量决定呕血", "B"),   # first line only: 出血量 is on the second
    ("答案: C", "C"),
    ("A不对，选C", "AC"),                                 # any letter anywhere counts
    ("答案是C，因为出血量多少", "C"),
    ("DNA复制", "AD"),                                    # the D and the A of DNA
    ("解释: 选B\n答案: C", "B"),                          # 解释 present: only the first line
    ("b", cmexam.NO_ANSWER),                              # lower case is not a letter here
    ("", cmexam.NO_ANSWER), ("nan", cmexam.NO_ANSWER), ("NA", cmexam.NO_ANSWER), ("None", cmexam.NO_ANSWER),
    (" nan", cmexam.NO_ANSWER),                           # no letter, no option text
    ("出血", cmexam.NO_ANSWER),                           # a part of an option text is not it
    ("上消化道出血量大时呕血", "C"),
    ("答案：ABCDE", "ABCDE"),
    ("<think>A还是B？</think>答案：B", "AB"),             # the script does not remove traces
    ("以上均非", "E"),
]


@pytest.mark.parametrize("output,expected", READINGS)
def test_cmexam_reading(output, expected):
    sample = _sample(OPTS, "C")
    assert cmexam.read(sample, output) == expected


def test_cmexam_reading_uses_the_first_word_of_an_option():
    sample = _sample({"A": "5 mg 每日", "B": "10 mg 每日"}, "A")
    assert cmexam.read(sample, "应给予 5 次") == "A"       # "5" is option A's first word
    assert cmexam.read(sample, "剂量为10") == "B"


def test_cmexam_explanation_split():
    assert cmexam.explanation("答案: B\n解释: 因为甲") == "因为甲"
    assert cmexam.explanation("答案: B 解释:甲 解释:乙") == "甲"   # between the first two marks
    assert cmexam.explanation("答案: B\n解释：全角冒号") == "答案: B\n解释：全角冒号"
    assert cmexam.explanation("NA") == cmexam.NO_ANSWER


def test_weighted_prf_by_hand():
    golds, reads = ["A", "B", "AB", "C"], ["A", cmexam.NO_ANSWER, "AB", "A"]
    p, r, f = cmexam.weighted_prf(golds, reads)
    assert p == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert r == pytest.approx(0.5)
    assert f == pytest.approx((2 / 3 + 1) / 4)


def test_paper_bleu_and_rouge_by_hand():
    from aimed.tasks.protocols._paper_text import bleu_stats, corpus_bleu, rouge_l, rouge_n

    stats = [bleu_stats(list("ab"), list("ab"))]
    assert corpus_bleu(stats, 1) == pytest.approx(100.0) and corpus_bleu(stats, 4) == 0.0
    # brevity: hypothesis 2 of reference 4 -> exp(1 - 4/2)
    assert corpus_bleu([bleu_stats(list("abcd"), list("ab"))], 1) == pytest.approx(100 * math.exp(-1))
    assert rouge_n(list("abc"), list("abd"), 1) == pytest.approx(2 * (4 / 9) / (4 / 3 + 1e-8))
    assert rouge_n(list("aab"), list("ab"), 1) == pytest.approx(2 * 1 / (2 + 1e-8))  # sets: "a" once
    assert rouge_l(list("abcd"), list("acd")) == pytest.approx(_f_lcs(3, 3, 4))


def test_bit_parallel_lcs_equals_the_table():
    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice("abcde ") for _ in range(rng.randrange(0, 40))]
        b = [rng.choice("abcdef") for _ in range(rng.randrange(0, 40))]
        assert lcs_length(a, b) == _lcs_table(a, b)


# ------------------------------------------------------------------ the whole protocol vs the script

@pytest.fixture(scope="module")
def cmexam_items(data_dir):
    """20 real CMExam items (12 single-answer, 8 multi-answer), with their raw CSV rows."""
    import pandas as pd

    samples = [s for s in load_cmexam(data_dir / "cmexam" / "val.csv",
                                      DataSpec(loader="cmexam", path="val.csv"))]
    frame = pd.read_csv(data_dir / "cmexam" / "val.csv").dropna(subset=["Answer"]).reset_index(drop=True)
    assert len(frame) == len(samples)
    singles = [i for i, s in enumerate(samples) if not s.is_multi_answer][:12]
    multis = [i for i, s in enumerate(samples) if s.is_multi_answer][:8]
    chosen = singles + multis
    for i in chosen:
        assert frame.loc[i, "Question"].strip() == samples[i].question
    return [samples[i] for i in chosen], frame.loc[chosen].reset_index(drop=True)


def test_output_formats_cover_the_issue():
    assert len(OUTPUT_FORMATS) >= 24


def test_cmexam_protocol_equals_the_paper_script(cmexam_items):
    """>= 300 outputs (every format, on single and multi-answer items) through the protocol
    and through the re-implementation of the paper's script: equal to 1e-6."""
    pd = pytest.importorskip("pandas")
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    samples, frame = cmexam_items
    rows, pairs = [], []
    for sample, (_, row) in zip(samples, frame.iterrows()):
        for output in outputs_for(sample, row["Explanation"]):
            pairs.append((sample, output))
            rows.append({"选项": row["Options"], "答案": row["Answer"], "答案解析": row["Explanation"],
                         "model_result": output})
    assert len(pairs) >= 300
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    df = pd.read_csv(io.StringIO(buf.getvalue()))          # what the script reads
    expected, parsed = _paper_script(df, sklearn_metrics.precision_recall_fscore_support)

    outputs = [o for _, o in pairs]
    got_samples = [s for s, _ in pairs]
    readings = [cmexam.read(s, o) for s, o in pairs]
    assert readings == parsed
    got = PROTOCOLS.get("cmexam").apply(got_samples, outputs, readings)
    for name, value in expected.items():
        assert got[f"cmexam_{name}"][0] == pytest.approx(value, abs=1e-6), name
    # the reading differs from the strict one on these outputs, and the strict one is never looser
    assert got["cmexam_acc"][0] != 100 * sum(_strict_correct(s, o) for s, o in pairs) / len(pairs)


def _strict_correct(sample, output) -> bool:
    from aimed.harness.scoring.extract import extract_choice

    return set(extract_choice(output, sample.options, sample.is_multi_answer)) == set(sample.answer)


def test_protocol_metrics_in_a_scored_task(cmexam_items, tmp_path):
    """score_record + summarise on a generate-mode task naming the protocol: the strict metrics,
    no_answer, the protocol's metrics beside them, readings kept in the records."""
    samples, _ = cmexam_items
    (task,) = resolve_tasks("cmexam_explain")
    records = []
    for i, s in enumerate(samples):
        output = outputs_for(s, s.explanation)[i % len(OUTPUT_FORMATS)]
        records.append(score_record(task.spec, {"doc": s.to_dict(), "mode": "generate", "resps": output}))
    metrics = summarise(task.spec, records)
    assert {"acc", "set_f1", "no_answer", "cmexam_acc", "cmexam_weighted_f1", "cmexam_no_answer_count",
            "cmexam_bleu1", "cmexam_bleu4", "cmexam_rouge1", "cmexam_rouge2", "cmexam_rougeL"} <= set(metrics)
    assert all("cmexam_read" in r for r in records)
    value, se, n = metrics["no_answer"]
    assert n == len(samples) and 0 <= value <= 1 and se >= 0
    assert metrics["cmexam_acc"][2] == len(samples) and metrics["cmexam_acc"][1] >= 0


# ------------------------------------------------------------------ OpenCompass CMB

@pytest.mark.parametrize("output,expected", [
    ("答案：B", "B"), ("ACD", "ACD"), ("B超提示ATP", "ABPT"), ("b", ""), ("Ｃ", "Ｃ"),
    ("答案是D，不是A", "AD"), ("", ""), ("DA", "AD"),
])
def test_opencompass_cmb_reading(output, expected):
    assert PROTOCOLS.get("opencompass_cmb").read(_sample(OPTS, "B"), output) == expected


def test_opencompass_cmb_accuracy_equals_its_rules(cmexam_items):
    samples, frame = cmexam_items
    protocol = PROTOCOLS.get("opencompass_cmb")
    pairs = [(s, o) for s, (_, row) in zip(samples, frame.iterrows()) for o in outputs_for(s, row["Explanation"])]
    readings = [protocol.read(s, o) for s, o in pairs]
    got = protocol.apply([s for s, _ in pairs], [o for _, o in pairs], readings)
    # OpenCompass: multiple_select_postprocess, then AccEvaluator (label ids, x 100)
    preds = ["".join(sorted(set(filter(str.isupper, o)))) for _, o in pairs]
    refs = [row for row in frame["Answer"] for _ in OUTPUT_FORMATS]
    labels = {lab: i for i, lab in enumerate(set(map(str, refs)))}
    for p in set(preds):
        labels.setdefault(str(p), len(labels))
    expected = 100 * sum(labels[p] == labels[r] for p, r in zip(preds, refs)) / len(refs)
    assert got["opencompass_cmb_acc"][0] == pytest.approx(expected, abs=1e-9)
    assert got["opencompass_cmb_no_answer_count"][0] == sum(not p for p in preds)


# ------------------------------------------------------------------ the re-implementation of the script

def _paper_script(df, precision_recall_fscore_support) -> dict:
    """What evaluate_lora_result.py prints, for a DataFrame read from its CSV (own code)."""
    def parse_option(row):
        result = row["model_result"]
        if not isinstance(result, str):
            return "无答案"
        head = result.split("\n")[0].strip() if "解释" in result else result
        found = ""
        seen = {}
        for line in row["选项"].split("\n"):
            parts = line.split()
            seen[parts[0]] = parts[1]
        for letter, content in seen.items():
            if letter in head or content in head:
                found += letter
        return found or "无答案"

    def parse_explanation(row):
        result = row["model_result"]
        if not isinstance(result, str):
            return "无答案"
        return result.split("解释:")[1].strip() if "解释:" in result else result

    df = df.copy()
    df["parsed_option"] = df.apply(parse_option, axis=1)
    df["parsed_explanation"] = df.apply(parse_explanation, axis=1)
    out = {"acc": 100 * (df["parsed_option"] == df["答案"]).sum() / len(df),
           "no_answer_count": float((df["parsed_option"] == "无答案").sum())}
    p, r, f, _ = precision_recall_fscore_support(df["答案"].tolist(), df["parsed_option"].tolist(),
                                                 average="weighted", zero_division=0)
    out.update(weighted_precision=p, weighted_recall=r, weighted_f1=f)
    kept = df.dropna(subset=["答案解析", "parsed_explanation"])
    refs = [" ".join(list(x)) for x in kept["答案解析"]]
    hyps = [" ".join(list(x)) for x in kept["parsed_explanation"]]
    out["bleu1"] = _nmt_bleu([x.split() for x in refs], [x.split() for x in hyps], 1)
    out["bleu4"] = _nmt_bleu([x.split() for x in refs], [x.split() for x in hyps], 4)
    r1 = [_rouge_n_set(h.split(" "), x.split(" "), 1) for h, x in zip(hyps, refs)]
    r2 = [_rouge_n_set(h.split(" "), x.split(" "), 2) for h, x in zip(hyps, refs)]
    rl = [_rouge_l_table(h.split(" "), x.split(" ")) for h, x in zip(hyps, refs)]
    out.update(rouge1=100 * sum(r1) / len(r1), rouge2=100 * sum(r2) / len(r2), rougeL=100 * sum(rl) / len(rl))
    return out, df["parsed_option"].tolist()


def _nmt_bleu(refs, hyps, max_order):
    matches, possible = [0] * max_order, [0] * max_order
    ref_len = hyp_len = 0
    for ref, hyp in zip(refs, hyps):
        ref_len += len(ref)
        hyp_len += len(hyp)
        ref_counts = Counter(tuple(ref[i:i + n]) for n in range(1, max_order + 1) for i in range(len(ref) - n + 1))
        hyp_counts = Counter(tuple(hyp[i:i + n]) for n in range(1, max_order + 1) for i in range(len(hyp) - n + 1))
        for gram, count in (hyp_counts & ref_counts).items():
            matches[len(gram) - 1] += count
        for n in range(1, max_order + 1):
            if len(hyp) - n + 1 > 0:
                possible[n - 1] += len(hyp) - n + 1
    precisions = [m / p if p else 0.0 for m, p in zip(matches, possible)]
    if min(precisions) == 0:
        return 0.0
    geo = math.exp(sum(math.log(p) for p in precisions) / max_order)
    ratio = hyp_len / ref_len
    return 100 * geo * (1.0 if ratio > 1 else math.exp(1 - 1 / ratio))


def _rouge_n_set(hyp, ref, n):
    h = {tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1)}
    r = {tuple(ref[i:i + n]) for i in range(len(ref) - n + 1)}
    p = len(h & r) / len(h) if h else 0.0
    rec = len(h & r) / len(r) if r else 0.0
    return 2.0 * ((p * rec) / (p + rec + 1e-8))


def _lcs_table(a, b) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[len(a)][len(b)]


def _f_lcs(lcs, m, n):
    r, p = lcs / m, lcs / n
    beta = p / (r + 1e-12)
    return ((1 + beta ** 2) * r * p) / (r + beta ** 2 * p + 1e-12)


def _rouge_l_table(hyp, ref):
    return _f_lcs(_lcs_table(hyp, ref), len(ref), len(hyp))


def _sample(options, answer):
    from aimed.harness.samples import Sample

    return Sample(id="x", question="q", options=dict(options), answer=tuple(answer))



# ------------------------------------------------------------------ a run end to end

class CannedBackend:
    """Answers each generate request with the output written for its question."""

    name = "canned"

    def __init__(self, answers: dict[str, str]):
        from aimed.harness.models.backend import CheckpointInfo

        self.answers = answers
        self.info = CheckpointInfo(model_folder=None, device="canned", dtype="none")

    def fingerprint(self, args, hash_folder) -> str:
        return "canned-" + str(abs(hash(tuple(sorted(self.answers.items())))))

    def generate(self, requests, bar=None):
        out = []
        for req in requests:
            out.append(next(a for q, a in self.answers.items() if q in req.context))
            if bar is not None:
                bar.update(1)
        return out


def test_run_reports_protocol_no_answer_traces_and_skipped_rows(tmp_path):
    import json

    from aimed.harness.evaluate import evaluate
    from aimed.harness.models.args import ModelArgs
    from aimed.harness.runner import RunOptions

    data = tmp_path / "mini.csv"
    data.write_text("Question,Options,Answer,Explanation\r\n"
                    '甲问,"A 原发病\nB 出血部位\nC 出血量",C,出血量决定\r\n'
                    '乙问,"A 原发病\nB 出血部位\nC 出血量",AB,原发病与部位\r\n'
                    '丙问,"A 原发病\nB 出血部位",Z,坏行\r\n'
                    '丁问,"A 原发病\nB 出血部位\nC 出血量",A,\r\n', encoding="utf-8")
    spec = tmp_path / "mini.yaml"
    spec.write_text(f"task: mini\nkind: multiple_choice\ndata: {{loader: cmexam, path: {data}}}\n"
                    "default_mode: generate\nmetrics: [acc, set_f1]\nprotocol: cmexam\non_bad_row: skip\n",
                    encoding="utf-8")
    answers = {"甲问": "<think>A还是C</think>答案: C\n解释: 出血量决定", "乙问": "答案: A、B\n解释: 原发病",
               "丁问": "抱歉，我无法回答"}
    result = evaluate(ModelArgs(model="canned"), [str(spec)], RunOptions(progress=False),
                      output_dir=tmp_path / "run", use_cache=False, backend=CannedBackend(answers))
    res = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))
    block = res["results"]["mini"]
    assert block["acc,none"] == pytest.approx(2 / 3)
    assert block["no_answer,none"] == pytest.approx(1 / 3) and isinstance(block["no_answer_stderr,none"], float)
    # the paper's script reads the first line (解释 follows), trace included: 甲 reads "AC"
    assert block["cmexam_acc,none"] == pytest.approx(100 * 1 / 3)   # 甲: "AC" (the trace), 乙: "AB", 丁: none
    assert block["cmexam_no_answer_count,none"] == 1
    assert res["higher_is_better"]["mini"]["no_answer"] is False
    assert res["higher_is_better"]["mini"]["cmexam_acc"] is True
    assert res["aimed"]["reasoning_traces"] == {"mini": 1}
    (skipped,) = res["aimed"]["skipped_rows"]["mini"]
    assert skipped["line"] == 8 and "'Z'" in skipped["reason"]   # rows span 3 lines (multi-line Options)
    lines = [json.loads(x) for x in (result.run_dir / "samples_mini.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines[0]["reasoning_trace"] is True and lines[0]["resps"].startswith("<think>")
    assert [r["cmexam_read"] for r in lines] == ["AC", "AB", "无答案"]
