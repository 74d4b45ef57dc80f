"""Chinese answer extraction from free text (generate mode), driven by a table of answer
strings (extract_cases.yaml: text, option set, single/multi, expected letters)."""

from pathlib import Path

import pytest
import yaml

from aimed.harness.scoring.extract import extract_choice, split_reasoning

TABLE = yaml.safe_load((Path(__file__).parent / "extract_cases.yaml").read_text(encoding="utf-8"))
OPTIONS = TABLE["options"]
CASES = [(text, OPTIONS[opts], kind == "multi", tuple(expected or ""))
         for text, opts, kind, expected in TABLE["cases"]]


def test_table_is_large_and_well_formed():
    assert len(CASES) >= 150
    for text, options, multi, expected in CASES:
        assert set(expected) <= set(options), text
        assert multi or len(expected) <= 1, text


@pytest.mark.parametrize("text,options,multi,expected", CASES, ids=[f"row{i}" for i in range(len(CASES))])
def test_extract_choice(text, options, multi, expected):
    assert extract_choice(text, options, multi) == expected


def test_single_returns_at_most_one_letter():
    for text, options, _, _ in CASES:
        assert len(extract_choice(text, options, False)) <= 1


def test_result_is_sorted_option_keys():
    got = extract_choice("答案：D、A", OPTIONS["ABCDE"], True)
    assert got == ("A", "D")


@pytest.mark.parametrize("text,answer,had", [
    ("<think>先看A</think>答案：B", "答案：B", True),
    ("推理……</think>\n答案：B", "\n答案：B", True),       # the opening tag was in the prompt
    ("<think>没想完", "", True),                           # never closed: no answer was given
    ("答案：B", "答案：B", False),
    ("<think>一</think><think>二</think>C", "C", True),
])
def test_split_reasoning(text, answer, had):
    assert split_reasoning(text) == (answer, had)
