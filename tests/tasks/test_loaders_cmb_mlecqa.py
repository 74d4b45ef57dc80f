"""The CMB-Exam and MLEC-QA loaders on fixtures written in the publishers' formats, their bad
rows, the CMB leaderboard file, and every spec of both run end to end on a tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import aimed.tasks  # noqa: F401  (registers the loaders)
from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.taskregistry import collect_rows, group_members, resolve_tasks
from aimed.harness.taskspec import DataSpec
from aimed.tasks.loaders.cmb import write_cmb_submission

FIXTURES = Path(__file__).parent / "fixtures"
CMB_VAL = FIXTURES / "cmb" / "CMB-val-merge.json"  # CMB's name: ids cmb-val-<index>
MLECQA = FIXTURES / "mlecqa" / "Clinic_test.json"  # MLEC-QA's name: subset Clinic
MLECQA_SUBSETS = {"mlecqa_clinic": "Clinic", "mlecqa_stomatology": "Stomatology",
                  "mlecqa_public_health": "PublicHealth", "mlecqa_tcm": "TCM", "mlecqa_cwm": "CWM"}
CASE = "（共用题干）男，62岁。吸烟40年，近3个月刺激性咳嗽，痰中带血，伴右侧胸痛。胸部X线片示右肺门肿块影。"


def load(name: str, path: Path, skip: bool = False) -> list:
    """The items a loader reads; its bad rows are one UserError (as a task reports them)
    unless ``skip``."""
    rows = plugins.LOADERS.get(name)(path, DataSpec(loader=name, path=str(path)))
    return collect_rows(rows, path, skip=skip)[0]


def write_json(path: Path, items: list, indent=4) -> Path:
    path.write_text(json.dumps(items, ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def cmb_item(**over) -> dict:
    item = {"exam_type": "医师考试", "exam_class": "执业医师", "exam_subject": "内科", "question": "问",
            "answer": "A", "question_type": "单项选择题", "option": {"A": "甲", "B": "乙", "C": "丙"}}
    return {**item, **over}


def mlecqa_item(**over) -> dict:
    item = {"qid": "1", "qtype": "A1型题", "qtext": "问", "qimage": "",
            "options": {"A": "甲", "B": "乙", "C": "丙", "D": "丁", "E": "戊"}, "answer": "A"}
    return {**item, **over}


def test_both_loaders_registered():
    assert {"cmb", "mlecqa"} <= set(plugins.LOADERS.names())


# ------------------------------------------------------------------ CMB-Exam

def test_cmb_val_fixture():
    items = load("cmb", CMB_VAL, skip=True)
    assert len(items) == 7  # 8 items, item [5] is the bad one
    assert [s.id for s in items] == [f"cmb-val-{i}" for i in (0, 1, 2, 3, 4, 6, 7)]
    assert [s.answer for s in items] == [("D",), ("A", "B", "D"), ("B",), ("A", "C", "E"), ("A",), ("C",), ("E",)]
    assert sum(s.is_multi_answer for s in items) == 2  # the two 多项选择题
    first = items[0]
    assert first.where == "CMB-val-merge.json:2"  # the line the item's { is on (CMB indents by 4)
    assert first.options == {"A": "小叶型肺炎", "B": "浸润性肺结核", "C": "继发性肺结核", "D": "原发性肺结核",
                             "E": "粟粒型肺结核"}
    assert first.question.startswith("患者，男性，11岁。") and first.question.endswith("此男孩可能患")
    assert first.categories == {"exam_type": "医师考试", "exam_class": "执业医师", "exam_subject": "口腔执业医师"}
    assert first.explanation.startswith("儿童原发性肺结核")
    # "E": "" (a four-option item) is left out, as CMB's prompt code leaves it out
    assert items[2].options == {"A": "20～40滴", "B": "40～60滴", "C": "60～80滴", "D": "80～100滴"}
    assert {s.categories["exam_type"] for s in items} == {"医师考试", "护理考试", "药师考试", "医学考研", "专业知识考试"}
    assert all(set(s.categories) == {"exam_type", "exam_class", "exam_subject"} for s in items)


def test_cmb_bad_row_is_one_line_naming_file_line_item_and_field():
    with pytest.raises(UserError) as exc:
        load("cmb", CMB_VAL)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{CMB_VAL}:82: item [5], field 'answer': 'F' is not among the options ABCDE")
    assert "on_bad_row: skip" in message


def test_cmb_item_problems(tmp_path):
    f = write_json(tmp_path / "mine.json", [
        cmb_item(),
        cmb_item(answer="AB"),                         # [1] 单项选择题 with two letters
        cmb_item(option={"A": "甲", "B": "  "}, answer="B"),  # [2] the answer is a blank option
        {k: v for k, v in cmb_item().items() if k != "option"},  # [3] no option field
        cmb_item(answer="对"),                          # [4] not a letter
        "not an object",                               # [5]
        cmb_item(question_type="多项选择题", answer="A,C"),  # fine: separators are read
        cmb_item(exam_class=["执业医师"]),              # [7] a list where text belongs
    ])
    with pytest.raises(UserError) as exc:
        load("cmb", f)
    message = str(exc.value)
    assert message.startswith(f"{f}: 6 bad rows: ")
    assert "line 15: item [1], field 'answer': 'AB' has 2 letters but question_type is 单项选择题" in message
    assert "line 28: item [2], field 'answer': 'B' is not among the options A (blank options are left out)" in message
    assert "line 40: item [3]: missing field 'option'" in message
    assert "line 48: item [4], field 'answer': answer '对' is not option letters" in message
    assert "line 61: item [5]: expected a JSON object {...}, got str" in message
    assert "item [7], field 'exam_class': a JSON list ([\"执业医师\"]) where text was expected" in message
    items = load("cmb", f, skip=True)
    assert [s.id for s in items] == ["mine-0", "mine-6"]  # not CMB's own file: ids from its stem
    assert items[1].answer == ("A", "C")


def test_cmb_ids_and_test_split(tmp_path):
    f = write_json(tmp_path / "withids.json", [cmb_item(id=17), cmb_item(id=18, answer="B")])
    assert [s.id for s in load("cmb", f)] == ["17", "18"]
    test = write_json(tmp_path / "CMB-test-choice-question-merge.json",
                      [{k: v for k, v in cmb_item(id=i).items() if k != "answer"} for i in (1, 2)])
    # the loader reads items without answers; only a predict_only task takes them
    # (a normal task refuses the file: tests/tasks/test_cmb_predict_only.py)
    items = load("cmb", test)
    assert [(s.id, s.answer, s.is_multi_answer) for s in items] == [("1", (), False), ("2", (), False)]


@pytest.mark.parametrize("content, expected", [
    ('{"question": "问"}\n{"question": "问2"}\n', "not a JSON list: the file holds a JSON object or JSON Lines"),
    ("", "the file is empty"),
    ('[\n  {"question": "问",\n   "answer": }\n]', r":3: not valid JSON \(Expecting value\) in item \[0\]"),
    ('[{"question": "问"} {"question": "问2"}]', r":1: expected ',' or '\]' after item \[0\]"),
    ('[{"question": "问"}] x', r":1: text after the end of the JSON list"),
])
def test_files_that_are_not_one_json_list(tmp_path, content, expected):
    f = tmp_path / "d.json"
    f.write_text(content, encoding="utf-8")
    for loader in ("cmb", "mlecqa"):
        with pytest.raises(UserError, match=expected) as exc:
            load(loader, f)
        assert str(exc.value).startswith(str(f))


def test_write_cmb_submission_ids_and_letters(tmp_path):
    """CMB's score.py reads ``id`` and ``model_answer`` (letters, compared as a string)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"results": {"cmb_x": {}}, "configs": {"cmb_x": {}}}), encoding="utf-8")
    records = [{"doc": {"id": "1"}, "filtered_resps": ["A"]},
               {"doc": {"id": "2"}, "filtered_resps": ["C", "A"]},
               {"doc": {"id": "3"}, "filtered_resps": []},
               {"doc": {"id": "cmb-val-4"}, "filtered_resps": ["B"]}]
    (run / "samples_cmb_x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "answers.json"
    assert write_cmb_submission(run, out) == 4
    assert json.loads(out.read_text(encoding="utf-8")) == [
        {"id": 1, "model_answer": "A"}, {"id": 2, "model_answer": "AC"}, {"id": 3, "model_answer": ""},
        {"id": "cmb-val-4", "model_answer": "B"}]
    with pytest.raises(UserError, match="the run has no task 'cmb_val'"):
        write_cmb_submission(run, out, task="cmb_val")


# ------------------------------------------------------------------ MLEC-QA

def test_mlecqa_fixture():
    items = load("mlecqa", MLECQA, skip=True)
    assert len(items) == 7  # 8 records, item [6] is the bad one
    assert [s.id for s in items] == ["100101", "100102", "100103", "100104", "100105", "100106", "100108"]
    assert [s.answer for s in items] == [("B",), ("C",), ("B",), ("C",), ("A",), ("C",), ("B",)]
    assert not any(s.is_multi_answer for s in items)
    assert {s.categories["qtype"] for s in items} == {"A1型题", "A2型题", "A3/A4型题", "B1型题"}
    assert all(s.categories["subset"] == "Clinic" for s in items)
    assert items[0].question == "人体最大的消化腺是" and items[0].where == "Clinic_test.json:2"
    assert items[0].options == {"A": "胰腺", "B": "肝", "C": "腮腺", "D": "下颌下腺", "E": "舌下腺"}
    assert list(items[-1].options) == ["A", "B", "C", "D"]  # a four-option record (with a qimage)


def test_mlecqa_shared_case_and_shared_options():
    by_id = {s.id: s for s in load("mlecqa", MLECQA, skip=True)}
    # A3/A4: two questions on one case, each its own item whose question holds the case
    a3, a4 = by_id["100103"], by_id["100104"]
    assert a3.question == CASE + "最可能的诊断是" and a4.question == CASE + "为明确诊断，首选的检查是"
    assert a3.options != a4.options and (a3.answer, a4.answer) == (("B",), ("C",))
    # B1: two questions on one set of options, each its own item with those options
    b1, b2 = by_id["100105"], by_id["100106"]
    assert b1.options == b2.options == {"A": "肾上腺素", "B": "去甲肾上腺素", "C": "多巴胺", "D": "异丙肾上腺素",
                                        "E": "间羟胺"}
    assert b1.question != b2.question and (b1.answer, b2.answer) == (("A",), ("C",))


def test_mlecqa_bad_row_is_one_line_naming_file_line_item_and_field():
    with pytest.raises(UserError) as exc:
        load("mlecqa", MLECQA)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{MLECQA}:8: item [6], field 'answer': 'E' is not among the options ABCD "
                              "(blank options are left out)")


def test_mlecqa_group_qids_numbered_other_duplicates_reported(tmp_path):
    f = write_json(tmp_path / "PublicHealth_dev.json", [
        mlecqa_item(qid="200", qtype="A3/A4型题", qtext="病例。问一"),
        mlecqa_item(qid="200", qtype="A3/A4型题", qtext="病例。问二", answer="B"),
        mlecqa_item(qid="201", qtype="B1型题", qtext="问三"),
        mlecqa_item(qid="300"),
        mlecqa_item(qid="300", qtext="问四"),
        mlecqa_item(qid=None, qtext="问五"),
    ], indent=None)  # one line, as json.dumps writes it: every item on line 1
    items = load("mlecqa", f)
    assert [s.id for s in items] == ["200-1", "200-2", "201", "300", "300", "PublicHealth_dev-5"]
    assert all(s.categories["subset"] == "PublicHealth" for s in items)
    assert all(s.where == "PublicHealth_dev.json:1" for s in items)
    spec = tmp_path / "t.yaml"
    spec.write_text(f"task: t\nkind: multiple_choice\ndata: {{loader: mlecqa, path: {f}}}\nmetrics: [acc]\n",
                    encoding="utf-8")
    (task,) = resolve_tasks(str(spec))
    with pytest.raises(UserError, match=r"PublicHealth_dev\.json:1: duplicate id '300'"):
        task.samples()


def test_mlecqa_answers_and_fields(tmp_path):
    f = write_json(tmp_path / "mine.json", [
        mlecqa_item(answer=["C"]),                 # a one-letter list is read
        mlecqa_item(qid="2", answer="AB"),         # [1] two letters
        mlecqa_item(qid="3", answer=""),           # [2] none
        {k: v for k, v in mlecqa_item(qid="4").items() if k != "qtext"},  # [3]
        mlecqa_item(qid="5", qtype=None),          # no qtype: no qtype category
        mlecqa_item(qid=["6"]),                    # [5] a list where text belongs
    ])
    with pytest.raises(UserError) as exc:
        load("mlecqa", f)
    message = str(exc.value)
    assert "item [1], field 'answer': 'AB': give the one letter of the correct option" in message
    assert "item [2], field 'answer': empty; give the letter" in message
    assert "item [3]: missing field 'qtext'" in message
    assert "item [5], field 'qid': a JSON list" in message
    items = load("mlecqa", f, skip=True)
    assert [(s.id, s.answer) for s in items] == [("1", ("C",)), ("5", ("A",))]
    assert items[1].categories == {"subset": "mine"}


# ------------------------------------------------------------------ specs and a run

def test_specs_and_groups():
    assert group_members("mlecqa") == list(MLECQA_SUBSETS)
    full = group_members("medqa_full")  # later issue-19 tasks follow (test_loaders_promptcblue_openqa.py)
    assert full[:len(group_members("medqa")) + 6] == group_members("medqa") + ["cmb_val", *MLECQA_SUBSETS]
    tasks = {t.name: t for t in resolve_tasks("cmb_val,mlecqa")}
    assert tasks["cmb_val"].spec.data.path == "$AIMED_DATA/cmb/CMB-Exam/CMB-val/CMB-val-merge.json"
    assert tasks["cmb_val"].spec.metrics == ["acc", "set_f1"]
    for name, subset in MLECQA_SUBSETS.items():
        data = tasks[name].spec.data
        assert (data.loader, data.path, data.fewshot_path) == (
            "mlecqa", f"$AIMED_DATA/mlecqa/{subset}_test.json", f"$AIMED_DATA/mlecqa/{subset}_dev.json")


def test_every_spec_runs_on_the_fixtures(tiny_llama, cli, tmp_path, monkeypatch):
    """The built-in specs, with AIMED_DATA laid out as the publishers ship their files and
    the fixtures in their places; the bad rows skipped and recorded."""
    data = tmp_path / "data"
    (data / "cmb" / "CMB-Exam" / "CMB-val").mkdir(parents=True)
    shutil.copy(CMB_VAL, data / "cmb" / "CMB-Exam" / "CMB-val" / "CMB-val-merge.json")
    (data / "mlecqa").mkdir()
    for subset in MLECQA_SUBSETS.values():
        for split in ("dev", "test"):
            shutil.copy(MLECQA, data / "mlecqa" / f"{subset}_{split}.json")
    monkeypatch.setenv("AIMED_DATA", str(data))
    out = tmp_path / "r"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "cmb_val,mlecqa", "--output_dir", out,
                       "--no_cache", "--no_index", "--quiet", "--skip_bad_rows")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    aimed = results["aimed"]
    for name in ("cmb_val", *MLECQA_SUBSETS):
        assert 0.0 <= results["results"][name]["acc,none"] <= 1.0
        assert results["n-samples"][name]["effective"] == 7
        assert len(aimed["skipped_rows"][name]) == 1
    assert "set_f1,none" in results["results"]["cmb_val"]
    assert "acc,none" in results["results"]["mlecqa"]  # the group
    assert aimed["skipped_rows"]["cmb_val"][0]["line"] == 82
    cmb = aimed["categories"]["cmb_val"]
    assert set(cmb) == {"exam_type", "exam_class", "exam_subject"}
    assert {v: c["n"] for v, c in cmb["exam_type"].items()} == {
        "医师考试": 2, "护理考试": 2, "药师考试": 1, "医学考研": 1, "专业知识考试": 1}
    assert all("acc" in c for c in cmb["exam_type"].values())
    for name, subset in MLECQA_SUBSETS.items():
        cats = aimed["categories"][name]
        assert {v: c["n"] for v, c in cats["subset"].items()} == {subset: 7}
        assert {v: c["n"] for v, c in cats["qtype"].items()} == {"A1型题": 2, "A2型题": 1, "A3/A4型题": 2, "B1型题": 2}

    # the CMB leaderboard file from that run: one row an item, the run's predictions
    answers = tmp_path / "answers.json"
    assert write_cmb_submission(out, answers, task="cmb_val") == 7
    records = [json.loads(x) for x in (out / "samples_cmb_val.jsonl").read_text(encoding="utf-8").splitlines()]
    assert json.loads(answers.read_text(encoding="utf-8")) == [
        {"id": r["doc"]["id"], "model_answer": "".join(sorted(r["filtered_resps"]))} for r in records]
    (out / "results.json").write_text(json.dumps({**results, "configs": {"cmb_val": {}, "cmb_b": {}}}),
                                      encoding="utf-8")
    with pytest.raises(UserError, match="the run scored cmb_val, cmb_b; say which is the CMB task"):
        write_cmb_submission(out, answers)
