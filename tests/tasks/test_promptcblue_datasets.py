"""PromptCBLUE's other ten F1-scored datasets (IMCS-V2-NER/-DAC/-SR, CHIP-STS/-CDN/-CDEE/
-MDCFNPC, KUAKE-IR/-QQR/-QTR) on a fixture written in the publisher's dev.json format:
what the loader keeps, and each task's corpus score for set outputs, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

import aimed.tasks  # noqa: F401  (registers the loaders and metrics)
from aimed.harness import plugins
from aimed.harness.scoring.metrics import METRICS
from aimed.harness.taskregistry import collect_rows, resolve_tasks
from aimed.harness.taskspec import DataSpec

FIXTURE = Path(__file__).parent / "fixtures" / "promptcblue" / "dev_more.json"

# Outputs by sample_id, and each task's score by hand (tp/pred/gold for micro-F1; per-label
# F1 and gold counts for the label scores).
OUTPUTS = {
    # (症状,咳嗽) (药物,…) right, (症状,发热) not gold: tp 2 pred 3 gold 2; then tp 1 pred 1 gold 2
    "dev-70001": "上述句子中的实体包含：\n症状实体：咳嗽，发热\n药物实体：小儿肺热咳喘口服液",
    "dev-70002": "症状实体：发热\n检查实体：",
    # (询问,询问) right; empty -> 非上述类型 against 给出诊断: labels 询问 1, 给出诊断 0, 非上述类型 0
    "dev-70101": "关于症状的询问",
    "dev-70102": "",
    # 相同 reads 是的 (right); 是的 and empty (-> 是的) against 不是: F1 是的 2/4, 不是 0
    "dev-70201": "相同",
    "dev-70202": "是的",
    "dev-70203": "",
    # 相关 twice against 相关, 不相关: F1 相关 2/3, 不相关 0
    "dev-70301": "相关",
    "dev-70302": "相关",
    "dev-70401": "后者是前者的语义子集",
    "dev-70402": "完全一致",
    # 部分匹配 against 完全匹配, 很少匹配 right: F1 完全匹配 0, 部分匹配 0, 很少匹配 1
    "dev-70501": "部分匹配",
    "dev-70502": "很少匹配有一些参考价值",
    # last line: 膝骨关节病 right, 膝关节滑膜炎 wrong, 髌骨软化症 off the choices: tp 1 pred 2 gold 2;
    # a trailing newline leaves the last line empty: tp 0 pred 0 gold 2
    "dev-70601": "标准化结果：\n膝骨关节病，膝关节滑膜炎，髌骨软化症",
    "dev-70602": "2型糖尿病，糖尿病性周围神经病\n",
    # the second event misses 发生状态 否定: tp 1 pred 2 gold 2
    "dev-70701": "上述句子中的临床发现事件如下：\n主体词：结节；发生状态：；描述词：多发；解剖部位：甲状腺\n"
                 "主体词：结节；发生状态：；描述词：；解剖部位：双肺",
    # 没有 is off the choices, read 不标注: tp 1 pred 3 gold 2
    "dev-70801": "结果如下：\n咳嗽：阳性\n发烧：没有\n乏力：阴性",
    # 不确定 is off the choices, read 无法根据上下文确定…: tp 1 pred 2 gold 2
    "dev-70901": "结果如下：\n流鼻涕：患有该症状\n咳嗽：不确定",
}
EXPECTED = {
    "promptcblue_imcs_ner": ("cblue_micro_f1", 0.75),  # tp 3 pred 4 gold 4
    "promptcblue_imcs_dac": ("cblue_macro_f1", 1 / 3),
    "promptcblue_sts": ("cblue_weighted_f1", (0.5 * 1 + 0 * 2) / 3),  # macro would be 0.25
    "promptcblue_ir": ("cblue_weighted_f1", (2 / 3 * 1 + 0 * 1) / 2),
    "promptcblue_qqr": ("cblue_weighted_f1", 1.0),
    "promptcblue_qtr": ("cblue_weighted_f1", (0 * 1 + 1 * 1) / 2),  # macro would be 1/3
    "promptcblue_cdn": ("cblue_micro_f1", 1 / 3),  # tp 1 pred 2 gold 4: P 1/2 R 1/4
    "promptcblue_cdee": ("cblue_micro_f1", 0.5),
    "promptcblue_mdcfnpc": ("cblue_micro_f1", 0.4),  # P 1/3 R 1/2
    "promptcblue_imcs_sr": ("cblue_micro_f1", 0.5),
}


def _items(dataset: str):
    rows = plugins.LOADERS.get("promptcblue")(FIXTURE, DataSpec(loader="promptcblue", path=str(FIXTURE),
                                                                options={"task_dataset": dataset}))
    return collect_rows(rows, FIXTURE, skip=False)[0]


def test_loader_keeps_the_choices_the_scoring_reads():
    cdn, cdee, sr, sts = (_items(d) for d in ("CHIP-CDN", "CHIP-CDEE", "IMCS-V2-SR", "CHIP-STS"))
    assert [s.id for s in cdn] == ["dev-70601", "dev-70602"] and len(sts) == 3
    assert cdn[0].labels == ("膝骨关节病", "膝关节游离体", "膝关节滑膜炎") and not cdn[0].options
    assert sr[0].labels[-1] == "无法根据上下文确定病人是否患有该症状"
    assert cdee[0].labels == () and sts[0].labels == ()  # null choices; classification reads none
    assert cdn[1].categories == {"task_dataset": "CHIP-CDN", "task_type": "normalization"}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_task_scores_by_the_publishers_rules(task, monkeypatch):
    monkeypatch.setenv("AIMED_DATA", str(FIXTURE.parent.parent))
    spec = resolve_tasks(task)[0].spec
    metric_name, expected = EXPECTED[task]
    assert spec.metrics == [metric_name] and spec.data.path == "$AIMED_DATA/promptcblue/dev.json"
    metric = METRICS.get(metric_name)
    items = _items(spec.data.options["task_dataset"])
    values = [metric.sample_fn(s, OUTPUTS[s.id]) for s in items]
    assert metric.summarise(values)[0] == pytest.approx(expected, abs=1e-12)
    # each target read as an output scores 1: the gold parses to itself
    assert metric.summarise([metric.sample_fn(s, s.target) for s in items])[0] == 1.0


def test_cdee_gold_events_and_sr_defaults():
    from aimed.tasks.metrics.cblue import parse_attributes, parse_events

    cdee = _items("CHIP-CDEE")[0]
    # fields in sorted key order (主体词, 发生状态, 描述词, 解剖部位), as the publisher's JSON
    assert sorted(parse_events(cdee.target)) == [
        ('"结节"', '""', '["多发"]', '["甲状腺"]'), ('"结节"', '"否定"', "[]", '["双肺"]')]
    sr = _items("IMCS-V2-SR")[0]
    assert parse_attributes("首行\n咳嗽：不确定\n无冒号的行\n甲：乙：丙", sr.labels, "默认") == {("咳嗽", "默认")}


def test_weighted_f1_equals_scikit_learn():
    import random

    from aimed.tasks.metrics.cblue import weighted_f1

    sklearn = pytest.importorskip("sklearn.metrics")
    rng = random.Random(1)
    labels = ["完全一致", "后者是前者的语义子集", "语义无直接关联", "乱写"]
    for _ in range(20):
        pairs = [(rng.choice(labels[:3]), rng.choice(labels)) for _ in range(rng.randint(1, 30))]
        gold, pred = zip(*pairs)
        report = sklearn.classification_report(gold, pred, output_dict=True, zero_division=0)
        assert weighted_f1(pairs) == pytest.approx(report["weighted avg"]["f1-score"], abs=1e-12)
