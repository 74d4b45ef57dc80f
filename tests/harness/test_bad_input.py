"""Every user mistake: one line on stderr naming the file (and line or field) and the fix,
exit code 2, no traceback, no run folder left behind."""

import shutil
import textwrap
from pathlib import Path

import pytest

HEADER = "Question,Options,Answer,Explanation\n"
GOOD_ROW = '"肝硬化最常见的并发症是","A 上消化道出血\nB 肝性脑病\nC 感染",A,解释\n'


def _spec(tmp: Path, csv_text: str | bytes, extra: str = "", loader: str = "cmexam") -> Path:
    data = tmp / "items.csv"
    if isinstance(csv_text, bytes):
        data.write_bytes(csv_text)
    else:
        data.write_text(csv_text, encoding="utf-8")
    spec = tmp / "mytask.yaml"
    spec.write_text(textwrap.dedent(f"""\
        task: mytask
        kind: multiple_choice
        data:
          loader: {loader}
          path: items.csv
        metrics: [acc]
        """) + extra, encoding="utf-8")
    return spec


def _check(result, *needles, out_dir: Path | None = None):
    code, _, err = result
    assert code == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    if out_dir is not None:
        assert not out_dir.exists()
        assert not list(out_dir.parent.glob(f".{out_dir.name}.partial-*"))


CASES = {
    "malformed_row": (HEADER + GOOD_ROW + '"坏行","A 甲\nB 乙",A,x,多余,字段\n', ["items.csv:", "line"]),
    "answer_not_in_options": (HEADER + '"题干","A 甲\nB 乙",D,x\n', ["items.csv:2", "'D'"]),
    "empty_options": (HEADER + '"题干","",A,x\n', ["items.csv:2"]),
    "missing_column": ("Question,Answer\n题干,A\n", ["items.csv", "Options"]),
    "gb18030": ((HEADER + GOOD_ROW).encode("gb18030"), ["items.csv", "gb18030"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_files(case, cli, tiny_llama, tmp_path):
    text, needles = CASES[case]
    spec = _spec(tmp_path, text)
    out = tmp_path / "run"
    _check(cli("run", "--model", tiny_llama, "--tasks", spec, "--output_dir", out, "--no_cache"),
           *needles, out_dir=out)
    _check(cli("validate", spec), *needles)


def test_duplicate_ids(cli, tmp_path):
    data = tmp_path / "items.jsonl"
    row = '{"qid": "q1", "question": "题干", "A": "甲", "B": "乙", "answer": "A"}\n'
    data.write_text(row + row, encoding="utf-8")
    spec = tmp_path / "dup.yaml"
    spec.write_text(textwrap.dedent("""\
        task: dup
        kind: multiple_choice
        data:
          loader: table
          path: items.jsonl
          columns: {question: question, options: [A, B], answer: answer, id: qid}
        metrics: [acc]
        """), encoding="utf-8")
    _check(cli("validate", spec), "items.jsonl:2", "duplicate id 'q1'")


def test_unknown_spec_key(cli, tmp_path):
    spec = _spec(tmp_path, HEADER + GOOD_ROW, extra="num_fewshots: 3\n")
    _check(cli("validate", spec), "mytask.yaml", "num_fewshots")


def test_unknown_task_did_you_mean(cli, tiny_llama, tmp_path):
    _check(cli("run", "--model", tiny_llama, "--tasks", "cmexan", "--output_dir", tmp_path / "r"),
           "cmexan", "did you mean 'cmexam'", out_dir=tmp_path / "r")


def test_missing_data_folder(cli, tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("AIMED_DATA", str(tmp_path / "nowhere"))
    _check(cli("run", "--model", tiny_llama, "--tasks", "cmexam", "--output_dir", tmp_path / "r"),
           "nowhere", "AIMED_DATA", out_dir=tmp_path / "r")


def test_model_path_missing(cli, tmp_path):
    _check(cli("run", "--model", tmp_path / "no-such-ckpt", "--tasks", "demo_mcq",
               "--output_dir", tmp_path / "r"), "no-such-ckpt", out_dir=tmp_path / "r")


def test_corrupt_safetensors(cli, tiny_llama, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _check(cli("run", "--model", broken, "--tasks", "demo_mcq", "--output_dir", tmp_path / "r", "--no_cache"),
           "model.safetensors", out_dir=tmp_path / "r")


def test_bad_flags(cli, tiny_llama, tmp_path):
    _check(cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--batch_size", "lots"), "--batch_size")
    code = cli("run", "--model", tiny_llama, "--mode", "guess")[0]
    assert code == 2
