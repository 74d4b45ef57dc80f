"""Loaders on the real data (counts), on self-written fixtures, and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import aimed.tasks  # noqa: F401  (registers the loaders)
from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.taskregistry import collect_rows, reset_warnings, resolve_tasks
from aimed.harness.taskspec import ColumnMap, DataSpec

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = "Question,Options,Answer,Explanation\r\n"


def load(name: str, path: Path, **data) -> list:
    """The items a loader reads; its bad rows are one UserError, as a task reports them."""
    rows = plugins.LOADERS.get(name)(path, DataSpec(loader=name, path=str(path), **data))
    return collect_rows(rows, path, skip=False)[0]


def task_samples(tmp_path: Path, loader: str, data_file: Path, kind: str = "multiple_choice") -> list:
    spec = tmp_path / "t.yaml"
    metric = "acc" if kind == "multiple_choice" else "rougeL"
    spec.write_text(f"task: t\nkind: {kind}\ndata: {{loader: {loader}, path: {data_file}}}\n"
                    f"metrics: [{metric}]\n", encoding="utf-8")
    (task,) = resolve_tasks(str(spec))
    return task.samples()


def test_all_loaders_registered():
    assert {"cmexam", "cmmlu", "csl", "medterm", "medqa_mcmle", "table"} <= set(plugins.LOADERS.names())


# ------------------------------------------------------------------ real data

def test_cmexam_val(data_dir, caplog):
    reset_warnings()
    items = load("cmexam", data_dir / "cmexam" / "val.csv")
    # 6,811 rows; the row at line 26678 has Answer "nan" (no gold) and is skipped with a warning.
    assert len(items) == 6810
    assert "26678" in caplog.text
    # once a process: a pipeline reads the same file for every checkpoint it scores
    caplog.clear()
    assert len(load("cmexam", data_dir / "cmexam" / "val.csv")) == 6810
    assert "26678" not in caplog.text
    assert sum(s.is_multi_answer for s in items) == 210
    assert sum(len(s.options) == 4 for s in items) == 205
    first = items[0]
    assert first.id == "cmexam-2" and first.where == "val.csv:2"
    assert first.options == {"A": "原发病", "B": "出血部位", "C": "出血量", "D": "在胃内停留时间", "E": "以上均非"}
    assert first.answer == ("C",) and first.categories == {}
    multi = next(s for s in items if s.is_multi_answer)
    assert list(multi.answer) == sorted(multi.answer)
    # Some rows lack an option letter (e.g. B-E only); letters are kept as published.
    assert any(list(s.options) == ["B", "C", "D", "E"] for s in items)
    # where = the physical line a row starts on: rows span 6 lines (multi-line Options).
    assert items[1].where == "val.csv:7"
    assert all(v.strip() == v for s in items for v in s.options.values())


def test_cmexam_test10_annotations(data_dir):
    items = load("cmexam", data_dir / "cmexam" / "test_10.csv")
    assert len(items) == 9
    keys = {"Disease Group", "Area of Competency", "Clinical Department", "Medical Discipline", "Difficulty level"}
    assert all(set(s.categories) == keys for s in items)
    assert items[0].categories["Medical Discipline"] == "临床医学"
    assert [s.answer for s in items].count(("C",)) == 4


def test_cmmlu_counts(data_dir):
    test = [s for p in sorted((data_dir / "cmmlu" / "test").glob("*.csv")) for s in load("cmmlu", p)]
    dev = [s for p in sorted((data_dir / "cmmlu" / "dev").glob("*.csv")) for s in load("cmmlu", p)]
    assert len(test) == 1815 and len(dev) == 45
    anatomy = load("cmmlu", data_dir / "cmmlu" / "test" / "anatomy.csv")
    assert len(anatomy) == 148
    s = anatomy[0]
    assert s.id == "anatomy-0" and s.question == "女性生殖腺是" and s.answer == ("A",)
    assert s.options == {"A": "卵巢", "B": "前庭大腺", "C": "前庭球", "D": "乳腺"}
    assert s.categories == {"subject": "anatomy"}
    assert len({s.id for s in test}) == 1815


@pytest.mark.parametrize("split,count", [("dev", 103), ("test", 106)])
def test_csl_medical(data_dir, split, count):
    csl = data_dir / "csl"
    title = load("csl", csl / "ts" / f"{split}.tsv", options={"target": "title"})
    kw = load("csl", csl / "kg" / f"{split}.tsv", options={"target": "keywords"})
    disc = load("csl", csl / "cls_dcp" / f"{split}.tsv", options={"target": "discipline"})
    assert len(title) == len(kw) == len(disc) == count  # 103 + 106 = the README's 209 of 2,000
    assert [s.id for s in title] == [s.id for s in disc]
    assert all(s.question == t.question for s, t in zip(title, kw))
    assert all(len(s.options) == 5 and len(s.answer) == 1 for s in disc)
    assert all(s.options[s.answer[0]] == s.categories["discipline"] for s in disc)
    assert any("_" in s.target for s in kw)
    if split == "dev":
        assert title[0].target == "补肾活血汤对老年单纯收缩期高血压(肾虚血瘀证)患者血管内皮功能的影响"
        assert kw[0].target == "补肾活血汤_单纯收缩期高血压_肾虚血瘀证_内皮功能_老年"
        assert disc[0].answer == ("B",) and disc[0].where == "cls_dcp/dev.tsv:3"


def test_csl_needs_target_and_split_file(data_dir):
    with pytest.raises(UserError, match="options.target"):
        load("csl", data_dir / "csl" / "ts" / "dev.tsv")
    with pytest.raises(UserError, match="split file"):
        load("csl", data_dir / "csl", options={"target": "title"})


def test_csl_line_count_mismatch(tmp_path, data_dir):
    for part in ("ts", "kg", "cls_dcp"):
        (tmp_path / part).mkdir()
        lines = (data_dir / "csl" / part / "dev.tsv").read_text(encoding="utf-8").splitlines()[:5]
        if part == "kg":
            lines = lines[:4]
        (tmp_path / part / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as exc:
        load("csl", tmp_path / "ts" / "dev.tsv", options={"target": "title"})
    assert "kg/dev.tsv (4 lines)" in str(exc.value) and "ts/dev.tsv (5 lines)" in str(exc.value)


def test_medterm(data_dir):
    items = load("medterm", data_dir / "medterm" / "term_definitions.jsonl")
    assert len(items) == 273
    assert items[0].id == "termdef_0" and items[0].question == "腹水" and items[0].target.startswith("腹腔积液")
    assert items[0].where == "term_definitions.jsonl:1"


# ------------------------------------------------------------------ fixtures

def test_medqa_mcmle_fixture():
    items = load("medqa_mcmle", FIXTURES / "medqa_mcmle.jsonl")
    assert len(items) == 6
    assert items[0].id == "medqa-1" and items[0].answer == ("A",) and len(items[0].options) == 5
    assert items[3].answer == ("E",) and items[3].options["E"] == "触诊"
    assert items[0].categories == {"meta_info": "内科学"}
    (task,) = resolve_tasks(str(FIXTURES / "medqa_mcmle_fixture.yaml"))
    assert len(task.samples()) == 6


def test_medqa_answer_text_disagrees(tmp_path):
    obj = json.loads((FIXTURES / "medqa_mcmle.jsonl").read_text(encoding="utf-8").splitlines()[1])
    obj["answer_idx"] = "C"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:1: answer .* differs from option C"):
        load("medqa_mcmle", bad)


def test_table_csv():
    (task,) = resolve_tasks(str(FIXTURES / "table_mcq_csv.yaml"))
    items = task.samples()
    assert [s.id for s in items] == ["t1", "t2", "t3"]
    assert items[0].options == {"A": "36.0℃", "B": "37.3℃", "C": "38.5℃", "D": "39.0℃"}
    assert items[1].answer == ("A", "C", "D")
    assert items[2].options == {"A": "DNA病毒", "B": "RNA病毒"}  # trailing empty columns dropped
    assert items[0].categories == {"科室": "内科"} and items[0].where == "table.csv:2"


def test_table_jsonl():
    (task,) = resolve_tasks(str(FIXTURES / "table_mcq_jsonl.yaml"))
    items = task.samples()
    assert [s.id for s in items] == ["1", "2", "3"]
    assert items[0].options["B"] == "B细胞" and items[0].answer == ("B",)
    assert items[1].categories == {} and len(items[1].options) == 3
    assert items[2].options == {"A": "血红蛋白", "B": "白蛋白"} and items[2].answer == ("A",)
    assert items[2].where == "table.jsonl:4"


def test_table_option_lines_and_generation(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text('q,opts,ans,ref\n问1,"A 甲\nB 乙",B,\n', encoding="utf-8")
    items = load("table", f, columns=ColumnMap(question="q", options="opts", answer="ans"))
    assert items[0].options == {"A": "甲", "B": "乙"} and items[0].answer == ("B",)
    g = tmp_path / "gen.jsonl"
    g.write_text('{"question": "什么是发热", "answer": "体温升高"}\n', encoding="utf-8")
    (s,) = load("table", g)
    assert s.target == "体温升高" and s.options == {} and s.id == "gen-1"


def test_demo_data():
    tasks = {t.name: t for t in resolve_tasks("demo")}
    mcq = tasks["demo_mcq"].samples()
    assert len(mcq) == 24 and sum(s.is_multi_answer for s in mcq) == 4
    assert all(len(s.categories) == 5 for s in mcq)
    assert len(tasks["demo_medterm"].samples()) == 16


# ------------------------------------------------------------------ bad input

def write(tmp_path: Path, name: str, content: str, encoding: str = "utf-8-sig") -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode(encoding))
    return p


def test_malformed_csv_row(tmp_path):
    p = write(tmp_path, "bad.csv", HEADER + '问1,"A 甲\r\nB 乙",A,解\r\n问2,A 甲,B,解,多余\r\n')
    with pytest.raises(UserError, match=r"bad\.csv:4: row has 5 fields but the header has 4"):
        load("cmexam", p)


def test_broken_quotes(tmp_path):
    p = write(tmp_path, "quote.csv", HEADER + '问1,"A 甲"x,A,解\r\n')
    with pytest.raises(UserError, match=r"quote\.csv:2: malformed CSV"):
        load("cmexam", p)


def test_unparseable_option_line(tmp_path):
    p = write(tmp_path, "opt.csv", HEADER + '问1,"A 甲\nB 乙",A,解\r\n问2,"A 甲\n乙丙丁",A,解\r\n')
    with pytest.raises(UserError, match=r"opt\.csv:4: cannot read option line '乙丙丁'"):
        load("cmexam", p)


def test_empty_option(tmp_path):
    p = write(tmp_path, "empty.csv", HEADER + '问1,"A 甲\nB 乙\nC \nD 丁",A,解\r\n')
    with pytest.raises(UserError, match=r"empty\.csv:2: option C is empty"):
        load("cmexam", p)
    p = write(tmp_path, "cm.csv", ",Question,A,B,C,D,Answer\n0,问,甲,,丙,丁,A\n")
    with pytest.raises(UserError, match=r"cm\.csv:2: option B is empty"):
        load("cmmlu", p)


def test_answer_not_among_options(tmp_path):
    p = write(tmp_path, "ans.csv", HEADER + '问1,"A 甲\nB 乙\nC 丙",D,解\r\n')
    with pytest.raises(UserError, match=r"ans\.csv:2: answer 'D' of item 'ans-2' is not among its options ABC"):
        task_samples(tmp_path, "cmexam", p)


def test_answer_not_letters(tmp_path):
    p = write(tmp_path, "ans2.csv", HEADER + '问1,"A 甲\nB 乙",对,解\r\n')
    with pytest.raises(UserError, match=r"ans2\.csv:2: answer '对' is not option letters"):
        load("cmexam", p)


def test_duplicate_ids(tmp_path):
    p = write(tmp_path, "dup.jsonl", '{"id": "x", "term": "甲", "definition": "一"}\n'
                                     '{"id": "x", "term": "乙", "definition": "二"}\n', "utf-8")
    with pytest.raises(UserError, match=r"dup\.jsonl:2: duplicate id 'x' \(first at dup\.jsonl:1\)"):
        task_samples(tmp_path, "medterm", p, kind="generation")


def test_gb18030_file(tmp_path):
    p = write(tmp_path, "gbk.csv", HEADER + '上消化道出血,"A 原发病\nB 出血部位",A,解释\r\n', "gb18030")
    with pytest.raises(UserError) as exc:
        load("cmexam", p)
    msg = str(exc.value)
    assert "gbk.csv" in msg and "not UTF-8" in msg and "GB18030" in msg and "data.encoding: gb18030" in msg
    items = load("cmexam", p, encoding="gb18030")
    assert items[0].question == "上消化道出血" and items[0].options["B"] == "出血部位"


def test_missing_column(tmp_path):
    p = write(tmp_path, "cols.csv", "Question,Choices,Answer\r\n问,A 甲,A\r\n")
    with pytest.raises(UserError, match=r"cols\.csv: missing column 'Options'; columns found: 'Question', "
                                        r"'Choices', 'Answer'"):
        load("cmexam", p)
    j = write(tmp_path, "cols.jsonl", '{"term": "甲", "definition": "一"}\n{"term": "乙"}\n', "utf-8")
    with pytest.raises(UserError, match=r"cols\.jsonl:2: missing column 'definition'; columns found: 'term'"):
        load("medterm", j)
    with pytest.raises(UserError, match=r"table\.csv: missing column 'question'"):
        load("table", FIXTURES / "table.csv", columns=ColumnMap(options=["选项A", "选项B"]))


def test_malformed_json_line(tmp_path):
    p = write(tmp_path, "j.jsonl", '{"term": "甲", "definition": "一"}\n{"term": "乙", \n', "utf-8")
    with pytest.raises(UserError, match=r"j\.jsonl:2: not valid JSON"):
        load("medterm", p)


def test_unanswered_rows_are_skipped_not_fatal(tmp_path):
    p = write(tmp_path, "nan.csv", HEADER + '问1,"A 甲\nB 乙",nan,解\r\n问2,"A 甲\nB 乙",B,解\r\n')
    items = load("cmexam", p)
    assert [s.id for s in items] == ["nan-4"]  # ids from the file's name: it is not one of CMExam's own
