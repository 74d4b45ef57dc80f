"""PromptCBLUE, Huatuo-26M, CMtMedQA and CMB-Clin loaders on fixtures written in the
publishers' formats; PromptCBLUE's corpus F1 metrics; every new spec run end to end on a
tiny model, and compared with itself (items paired by id)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import aimed.tasks  # noqa: F401  (registers the loaders and metrics)
from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import METRICS
from aimed.harness.taskregistry import collect_rows, group_members, resolve_tasks
from aimed.harness.taskspec import DataSpec
from aimed.tasks.metrics.cblue import macro_f1, parse_entities, parse_triples

FIXTURES = Path(__file__).parent / "fixtures"
PROMPTCBLUE = FIXTURES / "promptcblue" / "dev.json"
HUATUO = FIXTURES / "huatuo26m" / "test_datasets.jsonl"
CMTMEDQA = FIXTURES / "cmtmedqa" / "CMtMedQA_test.json"
CMBCLIN = FIXTURES / "cmbclin" / "CMB-test-qa.json"
PROMPTCBLUE_MORE = FIXTURES / "promptcblue" / "dev_more.json"  # the other ten datasets (test_promptcblue_datasets.py)
PROMPTCBLUE_TASKS = ["promptcblue_cmeee", "promptcblue_cmeie", "promptcblue_cdn", "promptcblue_cdee",
                     "promptcblue_mdcfnpc", "promptcblue_imcs_ner", "promptcblue_imcs_sr", "promptcblue_imcs_dac",
                     "promptcblue_ctc", "promptcblue_sts", "promptcblue_ir", "promptcblue_qic", "promptcblue_qqr",
                     "promptcblue_qtr"]
OPEN_TASKS = ["huatuo26m", "cmtmedqa", "cmbclin"]


def load(name: str, path: Path, skip: bool = False, **options) -> list[Sample]:
    rows = plugins.LOADERS.get(name)(path, DataSpec(loader=name, path=str(path), options=options))
    return collect_rows(rows, path, skip=skip)[0]


def bad_rows_message(name: str, path: Path, **options) -> str:
    with pytest.raises(UserError) as exc:
        load(name, path, **options)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_loaders_and_metrics_registered():
    assert {"promptcblue", "huatuo26m", "cmtmedqa", "cmbclin"} <= set(plugins.LOADERS.names())
    for name in ("cblue_micro_f1", "cblue_macro_f1", "cblue_weighted_f1"):
        m = METRICS.get(name)
        assert m.higher_is_better and m.kinds == ("generation",) and m.description
        assert m.aggregate is not None and m.aggregate.__module__ == "aimed.tasks.metrics.cblue"


# ------------------------------------------------------------------ PromptCBLUE

def test_promptcblue_fixture_by_dataset():
    items = load("promptcblue", PROMPTCBLUE, skip=True)
    assert len(items) == 10  # 11 lines, line 8 (a null target) is the bad one
    by = {}
    for s in items:
        by.setdefault(s.categories["task_dataset"], []).append(s.id)
    assert by == {"CMeEE-V2": ["dev-39492", "dev-134372"], "CMeIE": ["dev-4416"], "CMeIE-V2": ["dev-67405"],
                  "CHIP-CTC": ["dev-19056", "dev-19957"], "KUAKE-QIC": ["dev-8110", "dev-1899", "dev-17235"],
                  "MedDG": ["dev-8944"]}
    ner = items[0]
    assert ner.question.startswith("找出句子中的微生物类，医疗程序，医院科室，身体部位实体：\n因此了解")
    assert ner.target.endswith("身体部位实体：体细胞中，正常核型细胞，21-三体核型细胞")
    assert ner.labels == ("微生物类", "医疗程序", "医院科室", "身体部位") and not ner.options  # answer_choices
    assert ner.categories == {"task_dataset": "CMeEE-V2", "task_type": "ner"} and ner.where == "dev.json:1"
    assert all(not s.labels and not s.options for s in items if s.categories["task_type"] != "ner")
    assert all(not s.answer for s in items)
    ie = [s.id for s in load("promptcblue", PROMPTCBLUE, skip=True, task_dataset=["CMeIE", "CMeIE-V2"])]
    assert ie == ["dev-4416", "dev-67405"]
    assert [s.target for s in load("promptcblue", PROMPTCBLUE, skip=True, task_dataset="KUAKE-QIC")] == [
        "就医建议", "就医建议", "治疗方案"]


def test_promptcblue_bad_row_named_by_file_line_and_field():
    message = bad_rows_message("promptcblue", PROMPTCBLUE)
    assert message.startswith(f"{PROMPTCBLUE}:8: field 'target': expected text, got NoneType")
    # a task that selects no dataset with bad rows loads cleanly
    assert len(load("promptcblue", PROMPTCBLUE, task_dataset="CMeEE-V2")) == 2


def test_promptcblue_item_problems(tmp_path):
    item = {"input": "找出实体：\n发热。", "target": "上述句子中的实体包含：\n临床表现实体：发热", "answer_choices": ["临床表现"],
            "task_type": "ner", "task_dataset": "CMeEE-V2", "sample_id": "dev-1"}
    f = write_lines(tmp_path / "dev.json", [
        item,
        {**item, "sample_id": "dev-2", "answer_choices": None},        # line 2: NER without choices
        {**item, "sample_id": "dev-3", "answer_choices": "临床表现"},   # line 3: not a list
        {k: v for k, v in item.items() if k != "sample_id"},           # line 4
        {**item, "sample_id": "dev-5", "input": " "},                   # line 5
        {**item, "sample_id": ["dev-6"]},                               # line 6
    ])
    message = bad_rows_message("promptcblue", f)
    assert message.startswith(f"{f}: 5 bad rows: ")
    assert "line 2: field 'answer_choices': an NER item needs its entity types there" in message
    assert "line 3: field 'answer_choices': expected a list of non-empty strings or null" in message
    assert "line 4: missing column 'sample_id'" in message
    assert "line 5: field 'input': empty" in message
    assert "line 6: field 'sample_id': a JSON list" in message
    assert [s.id for s in load("promptcblue", f, skip=True)] == ["dev-1"]


def test_promptcblue_test_split_and_unknown_dataset(tmp_path):
    test = write_lines(tmp_path / "test.json", [
        {"input": "判断意图：\n怎样备孕", "target": "", "answer_choices": ["就医建议"], "task_type": "cls",
         "task_dataset": "KUAKE-QIC", "sample_id": "test-9060"}])
    with pytest.raises(UserError, match=r"test\.json: no selected item has a target, as in PromptCBLUE's test split"):
        load("promptcblue", test)
    with pytest.raises(UserError, match=r"dev\.json: no item of task_dataset CHIP-STS; the file holds CHIP-CTC, "
                                        r"CMeEE-V2, CMeIE, CMeIE-V2, KUAKE-QIC, MedDG"):
        load("promptcblue", PROMPTCBLUE, skip=True, task_dataset="CHIP-STS")
    with pytest.raises(UserError, match="data.options.task_dataset must be a dataset name or a list"):
        load("promptcblue", PROMPTCBLUE, task_dataset=3)


def test_promptcblue_parsing_rules():
    out = "上述句子中的实体包含：\n疾病实体：发热， 咳嗽 ，\n药物实体：阿司匹林\n疾病实体：发热"
    assert parse_entities(out, ["疾病", "身体部位"]) == {("疾病", "发热"), ("疾病", "咳嗽")}  # 药物 not a choice
    spo = ("具有药物治疗关系的头尾实体对如下：头实体为心力衰竭，尾实体为伊伐布雷定。头实体为高血压，尾实体为氨氯地平。\n"
           "具有相关（症状）关系的头尾实体对如下：\n随便写的一行")
    assert parse_triples(spo) == {("药物治疗", "心力衰竭", "伊伐布雷定"), ("药物治疗", "高血压", "氨氯地平")}


def test_macro_f1_equals_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    labels = ["就医建议", "治疗方案", "病因分析", "非上述类型", "乱写"]
    for _ in range(20):
        pairs = [(rng.choice(labels[:4]), rng.choice(labels)) for _ in range(rng.randint(1, 30))]
        gold, pred = zip(*pairs)
        report = sklearn.classification_report(gold, pred, output_dict=True, zero_division=0)
        assert macro_f1(pairs) == pytest.approx(report["macro avg"]["f1-score"], abs=1e-12)


def test_corpus_values_survive_json_and_resampling():
    """Per-item values are sufficient statistics: after a JSON round trip (samples files)
    the corpus score is the same, and it is not the mean of per-item F1s."""
    micro, macro = METRICS.get("cblue_micro_f1"), METRICS.get("cblue_macro_f1")
    stats = [(2, 2, 3), (0, 1, 1), (1, 1, 2)]
    value, stderr, n = micro.summarise(json.loads(json.dumps(stats)))
    assert (value, n) == (pytest.approx(0.6), 3) and stderr >= 0
    pairs = [("就医建议", "就医建议"), ("就医建议", "非上述类型"), ("治疗方案", "治疗方案"), ("非上述类型", "病因分析")]
    assert macro.summarise(json.loads(json.dumps(pairs)))[0] == pytest.approx(5 / 12)


# ------------------------------------------------------------------ Huatuo-26M

def test_huatuo26m_fixture():
    items = load("huatuo26m", HUATUO, skip=True)
    assert [s.id for s in items] == ["huatuo26m-1", "huatuo26m-2", "h-4"]
    assert items[0].question == "做了腰间盘穿刺手术后，用盐泡脚可以吗"
    assert items[0].target.startswith("你好，一般术后泡脚是可以的")
    assert items[1].question == "我现在患有股癣，请问这种病哪里治疗比较好？"  # a list: its first entry
    assert items[1].target == "可以直接去当地的三甲医院皮肤科治疗，注意保持皮肤干燥。"
    assert all(not s.categories and not s.options for s in items)
    assert bad_rows_message("huatuo26m", HUATUO).startswith(f"{HUATUO}:3: field 'answers': empty")


def test_huatuo26m_problems(tmp_path):
    f = write_lines(tmp_path / "t.jsonl", [
        {"questions": "问", "answers": "答"},
        {"questions": ["问", 3], "answers": "答"},
        {"question": "问", "answer": "答"},
        {"questions": {"q": "问"}, "answers": "答"},
    ])
    message = bad_rows_message("huatuo26m", f)
    assert "line 2: field 'questions': a list that holds something other than text" in message
    assert "line 3: missing column 'questions', 'answers'" in message
    assert "line 4: field 'questions': a JSON object" in message


# ------------------------------------------------------------------ CMtMedQA

def test_cmtmedqa_history_rendering():
    items = load("cmtmedqa", CMTMEDQA, skip=True)
    assert [s.id for s in items] == ["j4219", "j4087", "j9"]
    assert items[0].question == (
        "患者：医生，我得了恶性乳腺癌中期，方案是做8次化疗，我已经做了四次了。\n"
        "医生：您好，治疗方案通常是个体化的，需要考量多个因素。\n"
        "患者：化疗后食欲不振，全身乏力，这种情况正常吗？\n"
        "医生：这是常见的化疗反应，可以合理安排饮食，适度运动。\n"
        "患者：谢谢医生。除了化疗，还有没有其他治疗方法可以考虑？")
    assert items[0].target == "除了化疗，恶性乳腺癌的综合治疗方式还包括手术治疗、放射治疗和靶向治疗等。"
    assert items[2].question == "患者：包皮炎用什么药膏好？\n我今年30岁。"  # no history; input on its own line
    assert [s.categories for s in items] == [{"cate1": "肿瘤科", "cate2": "肿瘤科"},
                                            {"cate1": "肿瘤科", "cate2": "综合治疗"}, {"cate1": "男科", "cate2": "男科"}]
    assert [s.where for s in items] == ["CMtMedQA_test.json:2", "CMtMedQA_test.json:20", "CMtMedQA_test.json:34"]
    message = bad_rows_message("cmtmedqa", CMTMEDQA)
    assert message.startswith(f"{CMTMEDQA}:43: item [3], field 'history': turn [0] is not a [patient, doctor] pair")


def test_cmtmedqa_problems(tmp_path):
    base = {"id": "j1", "instruction": "还要注意什么？", "input": "", "output": "多休息。", "history": [["问", "答"]]}
    f = tmp_path / "d.json"
    f.write_text(json.dumps([base, {**base, "id": "j2", "output": ""}, {**base, "id": "j3", "history": "问答"},
                             {k: v for k, v in base.items() if k != "instruction"}], ensure_ascii=False, indent=2),
                 encoding="utf-8")
    message = bad_rows_message("cmtmedqa", f)
    assert "item [1], field 'output': empty" in message
    assert "item [2], field 'history': expected a list of [patient, doctor] pairs" in message
    assert "item [3]: missing field 'instruction'" in message
    assert [s.id for s in load("cmtmedqa", f, skip=True)] == ["j1"]


# ------------------------------------------------------------------ CMB-Clin

def test_cmbclin_one_item_a_question_with_earlier_turns():
    items = load("cmbclin", CMBCLIN, skip=True)
    assert [s.id for s in items] == ["0-1", "0-2", "0-3", "3-1", "5-1", "5-2"]
    assert [s.categories["turn"] for s in items] == ["1", "2", "3", "1", "1", "2"]
    case = "现病史\n（1）病史摘要\n     病人，男，49岁，3小时前解大便后出现右下腹疼痛，右下腹可触及一包块。\n（2）主诉\n     右下腹痛并自扪及包块3小时。"
    assert items[0].question == f"问：{case}简述该病人的诊断及诊断依据。"  # description + question, as CMB joins them
    assert items[2].question == (f"问：{case}简述该病人的诊断及诊断依据。\n答：诊断：嵌顿性腹股沟斜疝合并肠梗阻。\n"
                                 "问：简述该病人的鉴别诊断。\n答：睾丸鞘膜积液、交通性鞘膜积液、隐睾、急性肠梗阻。\n"
                                 "问：简述该病人的治疗原则。")
    assert [s.target for s in items[:3]] == ["诊断：嵌顿性腹股沟斜疝合并肠梗阻。", "睾丸鞘膜积液、交通性鞘膜积液、隐睾、急性肠梗阻。",
                                             "嵌顿性疝原则上需要紧急手术治疗。"]
    assert items[5].target == "手术、化疗和放疗的综合治疗。"  # `solution`, as CMB's worker code names it
    assert items[5].question.endswith("此病人最可能的诊断是什么？\n答：肾母细胞瘤。\n问：治疗原则是什么？")
    assert [s.where for s in items] == ["CMB-test-qa.json:2"] * 3 + ["CMB-test-qa.json:21"] + ["CMB-test-qa.json:47"] * 2
    message = bad_rows_message("cmbclin", CMBCLIN)
    assert message.startswith(f"{CMBCLIN}:32: item [2], field 'QA_pairs' [1], 'answer': empty")


def test_cmbclin_problems(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps([{"description": "病例", "QA_pairs": []}, {"description": "", "QA_pairs": [{"question": "问",
                             "answer": "答"}]}, {"QA_pairs": []}, "x", {"id": 7, "description": "病例",
                             "QA_pairs": [{"question": "问", "answer": "答"}]}], ensure_ascii=False), encoding="utf-8")
    message = bad_rows_message("cmbclin", f)
    assert "item [0], field 'QA_pairs': expected a non-empty list" in message
    assert "item [1], field 'description': empty" in message
    assert "item [2]: missing field 'description'" in message
    assert "item [3]: expected a JSON object" in message
    assert [s.id for s in load("cmbclin", f, skip=True)] == ["7-1"]


# ------------------------------------------------------------------ specs, a run, a comparison

def test_specs_and_groups():
    assert group_members("promptcblue") == PROMPTCBLUE_TASKS
    assert group_members("medqa_full")[-len(PROMPTCBLUE_TASKS + OPEN_TASKS):] == PROMPTCBLUE_TASKS + OPEN_TASKS
    tasks = {t.name: t for t in resolve_tasks("promptcblue," + ",".join(OPEN_TASKS))}
    expect = {"promptcblue_cmeee": "CMeEE-V2", "promptcblue_cmeie": ["CMeIE", "CMeIE-V2"],
              "promptcblue_ctc": "CHIP-CTC", "promptcblue_qic": "KUAKE-QIC"}
    for name, dataset in expect.items():
        spec = tasks[name].spec
        assert (spec.data.loader, spec.data.path, spec.data.options) == (
            "promptcblue", "$AIMED_DATA/promptcblue/dev.json", {"task_dataset": dataset})
        assert spec.kind == "generation" and spec.prompt == "{input}"
        assert spec.metrics == (["cblue_micro_f1"] if name in ("promptcblue_cmeee", "promptcblue_cmeie")
                                else ["cblue_macro_f1"])
    paths = {"huatuo26m": "huatuo26m/test_datasets.jsonl", "cmtmedqa": "cmtmedqa/CMtMedQA_test.json",
             "cmbclin": "cmb/CMB-test-qa/CMB-test-qa.json"}
    for name, path in paths.items():
        spec = tasks[name].spec
        assert (spec.data.loader, spec.data.path) == (name, f"$AIMED_DATA/{path}")
        assert spec.metrics == ["rouge1", "rouge2", "rougeL", "bleu4", "char_f1"] and spec.main_metric == "rougeL"


def test_every_new_spec_runs_on_the_fixtures(tiny_llama, cli, tmp_path, monkeypatch):
    data = tmp_path / "data"
    for src, dest in ((PROMPTCBLUE, "promptcblue/dev.json"), (HUATUO, "huatuo26m/test_datasets.jsonl"),
                      (CMTMEDQA, "cmtmedqa/CMtMedQA_test.json"), (CMBCLIN, "cmb/CMB-test-qa/CMB-test-qa.json")):
        (data / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, data / dest)
    with (data / "promptcblue/dev.json").open("a", encoding="utf-8") as dev:  # one file, every dataset, as shipped
        dev.write(PROMPTCBLUE_MORE.read_text(encoding="utf-8"))
    monkeypatch.setenv("AIMED_DATA", str(data))
    out = tmp_path / "r"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "promptcblue," + ",".join(OPEN_TASKS),
                       "--limit", "3", "--output_dir", out, "--no_cache", "--no_index", "--quiet", "--skip_bad_rows")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    counts = {"promptcblue_cmeee": 2, "promptcblue_cmeie": 2, "promptcblue_cdn": 2, "promptcblue_cdee": 1,
              "promptcblue_mdcfnpc": 1, "promptcblue_imcs_ner": 2, "promptcblue_imcs_sr": 1, "promptcblue_imcs_dac": 2,
              "promptcblue_ctc": 2, "promptcblue_sts": 3, "promptcblue_ir": 2, "promptcblue_qic": 3,
              "promptcblue_qqr": 2, "promptcblue_qtr": 2, "huatuo26m": 3, "cmtmedqa": 3, "cmbclin": 3}
    for name, n in counts.items():
        assert results["n-samples"][name]["effective"] == n, name
        metric = "rougeL" if not name.startswith("promptcblue") else resolve_tasks(name)[0].spec.metrics[0]
        assert 0.0 <= results["results"][name][f"{metric},none"] <= 1.0, name
    records = [json.loads(x) for x in (out / "samples_promptcblue_cmeie.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["doc"]["id"] for r in records] == ["dev-4416", "dev-67405"]
    assert [r["cblue_micro_f1"][2] for r in records] == [1, 2]  # gold triples of each item
    qic = [json.loads(x) for x in (out / "samples_promptcblue_qic.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["cblue_macro_f1"][0] for r in qic] == ["就医建议", "就医建议", "治疗方案"]
    cats = results["aimed"]["categories"]
    assert {v: c["n"] for v, c in cats["cmbclin"]["turn"].items()} == {"1": 1, "2": 1, "3": 1}
    assert set(cats["promptcblue_cmeie"]["task_dataset"]) == {"CMeIE", "CMeIE-V2"}
    assert results["aimed"]["skipped_rows"]["promptcblue_ctc"][0]["line"] == 8

    code, report, err = cli("compare", out, out, "--format", "json", "--n_boot", "20")
    assert code == 0, err
    assert "cblue_micro_f1" in report and "cblue_macro_f1" in report
