"""`aimed-eval validate` catches what `run` would: a table of cases, one parametrised test.

Each case: the files to write (name -> text; ``{dir}`` is the case's folder), the command,
the exit code, and a fragment the output must hold (stderr for a failure, stdout for a
success). A failure is one line on stderr, exit 2, no traceback.
"""

from __future__ import annotations

import pytest

from aimed.harness import taskregistry

CMEXAM_HEAD = "Question,Options,Answer,Explanation\r\n"
GOOD_ROW = '问{i},"A 甲\nB 乙\nC 丙",B,解释{i}\r\n'


def _cmexam_rows(n: int, bad: set[int]) -> str:
    """n rows, those in ``bad`` with an answer that is not an option."""
    return CMEXAM_HEAD + "".join(GOOD_ROW.format(i=i).replace(",B,", ",Z,") if i in bad else GOOD_ROW.format(i=i)
                                 for i in range(n))


def _spec(loader: str, data: str, kind: str = "multiple_choice", metrics: str = "[acc]", extra: str = "",
          columns: str = "") -> str:
    cols = f", columns: {columns}" if columns else ""
    return (f"task: t\nkind: {kind}\ndata: {{loader: {loader}, path: {data}{cols}}}\n"
            f"metrics: {metrics}\n{extra}")


TABLE_CSV = "题目,A,B,答案,科室\n问一,甲,乙,A,内科\n问二,甲,乙,B,外科\n"
TABLE_JSONL = '{"题目": "问一", "A": "甲", "B": "乙", "答案": "A"}\n{"题目": "问二", "A": "甲", "B": "乙", "答案": "B"}\n'
TABLE_COLS = "{question: 题目, options: [A, B], answer: 答案, categories: [科别]}"
WIDE_HEAD = ",".join(["题目", *[f"O{i}" for i in range(1, 13)], "答案"])
WIDE_ROW = ",".join(["问", *[f"选{i}" for i in range(1, 13)], "L"])
WIDE_COLS = "{question: 题目, options: [" + ", ".join(f"O{i}" for i in range(1, 13)) + "], answer: 答案}"
TOO_WIDE_HEAD = ",".join(["题目", *[f"O{i}" for i in range(1, 28)], "答案"])
TOO_WIDE_ROW = ",".join(["问", *[f"选{i}" for i in range(1, 28)], "A"])
TOO_WIDE_COLS = "{question: 题目, options: [" + ", ".join(f"O{i}" for i in range(1, 28)) + "], answer: 答案}"

CASES = [
    # (id, files, command, exit code, fragment)
    ("categories-missing-csv", {"t.csv": TABLE_CSV, "t.yaml": _spec("table", "t.csv", columns=TABLE_COLS)},
     ["validate", "{dir}/t.yaml"], 2, "missing column '科别'"),
    ("categories-missing-jsonl", {"t.jsonl": TABLE_JSONL, "t.yaml": _spec("table", "t.jsonl", columns=TABLE_COLS)},
     ["validate", "{dir}/t.yaml"], 2, "missing column '科别'"),
    ("unknown-metric", {"d.csv": _cmexam_rows(3, set()), "t.yaml": _spec("cmexam", "d.csv", metrics="[accuracy]")},
     ["validate", "{dir}/t.yaml"], 2, "unknown metric 'accuracy'"),
    ("metric-misfit", {"d.csv": _cmexam_rows(3, set()), "t.yaml": _spec("cmexam", "d.csv", metrics="[acc, rougeL]")},
     ["validate", "{dir}/t.yaml"], 2, "metric 'rougeL' does not fit a multiple_choice task"),
    ("metric-misfit-generation", {"d.jsonl": '{"term": "甲", "definition": "一"}\n',
                                  "t.yaml": _spec("medterm", "d.jsonl", kind="generation", metrics="[set_f1]")},
     ["validate", "{dir}/t.yaml"], 2, "metric 'set_f1' does not fit a generation task"),
    ("protocol-metric-listed", {"d.csv": _cmexam_rows(3, set()),
                                "t.yaml": _spec("cmexam", "d.csv", metrics="[acc, cmexam_acc]")},
     ["validate", "{dir}/t.yaml"], 2, "is reported by the 'cmexam' protocol"),
    ("unknown-protocol", {"d.csv": _cmexam_rows(3, set()), "t.yaml": _spec("cmexam", "d.csv", extra="protocol: cmexm\n")},
     ["validate", "{dir}/t.yaml"], 2, "unknown protocol 'cmexm' (did you mean 'cmexam'?)"),
    ("protocol-misfit", {"d.jsonl": '{"term": "甲", "definition": "一"}\n',
                         "t.yaml": _spec("medterm", "d.jsonl", kind="generation", metrics="[rougeL]",
                                         extra="protocol: cmexam\n")},
     ["validate", "{dir}/t.yaml"], 2, "protocol 'cmexam' scores multiple_choice tasks, not generation"),
    ("protocol-ok", {"d.csv": _cmexam_rows(3, set()), "t.yaml": _spec("cmexam", "d.csv", extra="protocol: cmexam\n")},
     ["validate", "{dir}/t.yaml"], 0, "protocol cmexam (williamliujl/CMExam"),
    ("yaml-syntax", {"t.yaml": "task: t\nkind: multiple_choice\ndata: {loader: cmexam, path: [d.csv\nmetrics: [acc]\n"},
     ["validate", "{dir}/t.yaml"], 2, "t.yaml:4:8: not valid YAML"),
    ("yaml-indent", {"t.yaml": "task: t\n  kind: multiple_choice\n"},
     ["validate", "{dir}/t.yaml"], 2, "t.yaml:2:7: not valid YAML (mapping values are not allowed here)"),
    ("bad-rows-all-listed", {"d.csv": _cmexam_rows(6, {1, 3, 4}), "t.yaml": _spec("cmexam", "d.csv")},
     ["validate", "{dir}/t.yaml"], 2, "d.csv: 3 bad rows: line 5: answer 'Z'"),
    ("bad-rows-counted-beyond-20", {"d.csv": _cmexam_rows(30, set(range(25))), "t.yaml": _spec("cmexam", "d.csv")},
     ["validate", "{dir}/t.yaml"], 2, "25 bad rows: line 2: answer 'Z'"),
    ("bad-rows-mixed-kinds", {"d.csv": CMEXAM_HEAD + GOOD_ROW.format(i=0) + '问1,"A 甲\nB 乙",B\r\n'
                              + '问2,"A 甲\n乙丙丁",A,解\r\n' + GOOD_ROW.format(i=3).replace(",B,", ",Z,"),
                              "t.yaml": _spec("cmexam", "d.csv")},
     ["validate", "{dir}/t.yaml"], 2, "3 bad rows: line 5: row has 3 fields but the header has 4"),
    ("bad-jsonl-lines", {"d.jsonl": '{"term": "甲", "definition": "一"}\n{"term": "乙", \n[1]\n{"term": "丙"}\n',
                         "t.yaml": _spec("medterm", "d.jsonl", kind="generation", metrics="[rougeL]")},
     ["validate", "{dir}/t.yaml"], 2, "3 bad rows: line 2: not valid JSON"),
    ("bad-rows-skipped-by-spec", {"d.csv": _cmexam_rows(5, {1, 2}),
                                  "t.yaml": _spec("cmexam", "d.csv", extra="on_bad_row: skip\n")},
     ["validate", "{dir}/t.yaml"], 0, "3 items, 0 multi-answer, 2 bad row(s) skipped"),
    ("bad-rows-skipped-by-flag", {"d.csv": _cmexam_rows(5, {4}), "t.yaml": _spec("cmexam", "d.csv")},
     ["validate", "{dir}/t.yaml", "--skip_bad_rows"], 0, "4 items, 0 multi-answer, 1 bad row(s) skipped"),
    ("bad-on-bad-row-value", {"d.csv": _cmexam_rows(3, set()), "t.yaml": _spec("cmexam", "d.csv", extra="on_bad_row: drop\n")},
     ["validate", "{dir}/t.yaml"], 2, "field 'on_bad_row'"),
    ("twelve-option-columns", {"w.csv": WIDE_HEAD + "\n" + WIDE_ROW + "\n", "t.yaml": _spec("table", "w.csv", columns=WIDE_COLS)},
     ["validate", "{dir}/t.yaml"], 0, "ok  t: 1 items"),
    ("twenty-seven-option-columns", {"w.csv": TOO_WIDE_HEAD + "\n" + TOO_WIDE_ROW + "\n",
                                     "t.yaml": _spec("table", "w.csv", columns=TOO_WIDE_COLS)},
     ["validate", "{dir}/t.yaml"], 2, "option column 'O27' is beyond the 26 option letters"),
    ("every-row-bad-and-skipped", {"d.csv": _cmexam_rows(2, {0, 1}), "t.yaml": _spec("cmexam", "d.csv", extra="on_bad_row: skip\n")},
     ["validate", "{dir}/t.yaml"], 2, "no items found"),
]


@pytest.fixture(autouse=True)
def _no_skip_left_over():
    yield
    taskregistry.skip_bad_rows(False)  # the flag is process-wide; cases run in one process


@pytest.mark.parametrize("files,command,code,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_case(cli, tmp_path, files, command, code, fragment):
    for name, text in files.items():
        (tmp_path / name).write_text(text.replace("{dir}", str(tmp_path)), encoding="utf-8")
    got, out, err = cli(*[c.replace("{dir}", str(tmp_path)) for c in command])
    assert got == code, (out, err)
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert fragment in err, err
    else:
        assert fragment in out, out


def test_bad_rows_message_names_each_line_then_counts(cli, tmp_path):
    (tmp_path / "d.csv").write_text(_cmexam_rows(30, set(range(25))), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(_spec("cmexam", "d.csv"), encoding="utf-8")
    _, _, err = cli("validate", tmp_path / "t.yaml")
    assert err.count("answer 'Z'") == 20 and "and 5 more" in err


def test_skipped_rows_warned_once_by_line(cli, tmp_path, caplog):
    (tmp_path / "d.csv").write_text(_cmexam_rows(5, {1, 2}), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(_spec("cmexam", "d.csv", extra="on_bad_row: skip\n"), encoding="utf-8")
    code, _, _ = cli("validate", tmp_path / "t.yaml")
    assert code == 0
    (warning,) = [r.getMessage() for r in caplog.records if "bad row" in r.getMessage()]
    assert "line 5:" in warning and "line 8:" in warning


def test_twelve_options_are_all_read(tmp_path):
    from aimed.harness.taskregistry import resolve_tasks

    (tmp_path / "w.csv").write_text(WIDE_HEAD + "\n" + WIDE_ROW + "\n", encoding="utf-8")
    (tmp_path / "t.yaml").write_text(_spec("table", "w.csv", columns=WIDE_COLS), encoding="utf-8")
    (task,) = resolve_tasks(str(tmp_path / "t.yaml"))
    (item,) = task.samples()
    assert list(item.options) == list("ABCDEFGHIJKL") and item.answer == ("L",)


def test_cmexam_loader_ids_from_other_files(tmp_path, data_dir):
    from aimed.harness.taskregistry import resolve_tasks

    (tmp_path / "my_exam.csv").write_text(_cmexam_rows(2, set()), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(_spec("cmexam", "my_exam.csv"), encoding="utf-8")
    (task,) = resolve_tasks(str(tmp_path / "t.yaml"))
    assert [s.id for s in task.samples()] == ["my_exam-2", "my_exam-5"]
    (own,) = resolve_tasks("cmexam")
    assert own.samples()[0].id == "cmexam-2"  # CMExam's own val.csv keeps its ids
