"""Reading a judge's output, and the rubric files that say how it is asked and read.

The readers (``read_pointwise``, ``read_pairwise``, ``read_choice``) are driven by a table of
what judges write (judge_parse_cases.yaml); the rubric loader by a table of bad rubrics,
each refused with a sentence that names the file and the fix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from aimed.harness.errors import UserError
from aimed.harness.judge.parse import overall, read_choice, read_pairwise, read_pointwise
from aimed.harness.judge.rubric import DEFAULT_RETRY, load_rubric, read_rubric

HERE = Path(__file__).parent
TABLE = yaml.safe_load((HERE / "judge_parse_cases.yaml").read_text(encoding="utf-8"))
OPTIONS = TABLE["options"]
CASES = TABLE["cases"]
ONE = "judge_data/parse_one.yaml"  # one criterion (quality, 总体质量) on 1-10


@lru_cache(maxsize=None)
def _rubric(ref: str):
    return load_rubric(ref, HERE)


# ---- the readers, from the table ---------------------------------------------------------
def _param(case: dict):
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
    return pytest.param(case, id=case["id"], marks=marks)


def _read(case: dict):
    """What parse.py makes of the case's text, in the table's terms."""
    text, want = case["text"], case["expect"]
    if case["kind"] == "pointwise":
        reading = read_pointwise(text, _rubric(case["rubric"]))
        if reading is None:
            return None
        got = {"scores": reading.scores, "unsafe": reading.unsafe, "reason": reading.reason}
        if want is None or "reason" not in want:
            del got["reason"]
        return got
    if case["kind"] == "pairwise":
        return read_pairwise(text)
    letters = read_choice(text, OPTIONS[case.get("options", "ABCDE")], case.get("multi", False))
    return None if letters is None else "".join(letters)


def test_table_is_large_and_well_formed():
    assert len(CASES) >= 60
    ids = [c["id"] for c in CASES]
    assert len(set(ids)) == len(ids), "case ids repeat"
    for case in CASES:
        assert set(case) <= {"id", "kind", "rubric", "options", "multi", "text", "expect", "xfail"}, case["id"]
        assert isinstance(case["text"], str), case["id"]
        want = case["expect"]
        if case["kind"] == "pointwise":
            names = {c.name for c in _rubric(case["rubric"]).criteria}
            assert want is None or (set(want) <= {"scores", "unsafe", "reason"} and set(want["scores"]) == names
                                    and isinstance(want["unsafe"], bool)), case["id"]
        elif case["kind"] == "pairwise":
            assert want in ("A", "B", "tie", None), case["id"]
        else:
            assert case["kind"] == "choice", case["id"]
            options = OPTIONS[case.get("options", "ABCDE")]
            assert want is None or (set(want) <= set(options) and (case.get("multi") or len(want) <= 1)), case["id"]


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_reading(case):
    assert _read(case) == case["expect"]


# ---- overall: the weighted mean ---------------------------------------------------------
def test_overall_is_medterms_weighted_mean():
    medterm = _rubric("medterm")
    # accuracy weighs 2, the others 1: (2*5 + 2 + 4 + 3) / 5
    assert overall({"accuracy": 5, "completeness": 2, "safety": 4, "fluency": 3}, medterm) == pytest.approx(3.8)
    assert overall({"accuracy": 2, "completeness": 5, "safety": 4, "fluency": 3}, medterm) == pytest.approx(3.2)
    reading = read_pointwise("准确性：[[4.5]]\n完整性：[[3]]\n安全性：[[5]]\n流畅性：[[4]]", medterm)
    assert overall(reading.scores, medterm) == pytest.approx(4.2)  # (9 + 3 + 5 + 4) / 5


def test_overall_of_one_criterion_is_its_score():
    assert overall({"quality": 7}, _rubric(ONE)) == 7


# ---- Rubric: render, format lines, example, retry, sha ------------------------------------
def _write(folder: Path, data: dict, name: str = "probe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


BASE = {"rubric": "probe", "kind": "pointwise", "scale": [1, 5],
        "criteria": [{"name": "accuracy", "title": "准确性", "weight": 2, "description": "是否正确"},
                     {"name": "safety", "title": "安全性"}],
        "safety": "safety", "unsafe_at_most": 2, "prompt": "【回答】{answer}\n{format}"}

MEDTERM_FORMAT = ("准确性：[[1-5的整数]]\n完整性：[[1-5的整数]]\n安全性：[[1-5的整数]]\n流畅性：[[1-5的整数]]\n"
                  "危险：是 或 否\n理由：一句话")


def test_format_lines_are_written_from_the_criteria():
    assert _rubric("medterm").format_lines() == MEDTERM_FORMAT
    assert _rubric(ONE).format_lines() == "总体质量：[[1-10的整数]]\n理由：一句话"
    assert load_rubric("pairwise").format_lines() == "结论：[[A]]、[[B]] 或 [[C]]（C 表示两者相当）\n理由：一句话"
    assert load_rubric("mc_extract").format_lines() == "答案：[[选项字母]]"


def test_render_fills_every_placeholder():
    medterm = _rubric("medterm")
    text = medterm.render({"question": "高血压", "reference": "体循环动脉血压持续升高", "answer": "血压高于正常"})
    assert "【医学名词】高血压" in text
    assert "【参考答案】体循环动脉血压持续升高" in text
    assert "【模型回答】血压高于正常" in text
    assert "每项 1-5 分" in text
    assert "- 准确性（accuracy）：解释在医学上是否正确" in text
    assert "- 流畅性（fluency）：表述是否通顺" in text
    assert text.rstrip().endswith(MEDTERM_FORMAT)
    assert "{" not in text and "}" not in text


def test_render_leaves_json_braces_and_unknown_names(tmp_path):
    prompt = '按 JSON 回答，例如 {"accuracy": 4, "unsafe": false}\n{answer}\n{format}\n{not_a_field}'
    rubric = read_rubric(_write(tmp_path, {**BASE, "prompt": prompt}))
    text = rubric.render({"answer": "血压高于正常"})
    assert text.startswith('按 JSON 回答，例如 {"accuracy": 4, "unsafe": false}\n血压高于正常\n准确性：[[1-5的整数]]\n')
    assert text.endswith("危险：是 或 否\n理由：一句话\n{not_a_field}")


def test_render_pairwise_shows_both_answers():
    text = load_rubric("pairwise").render({"question": "Q", "reference": "R", "answer_a": "甲", "answer_b": "乙"})
    assert "【回答A】甲\n" in text and "【回答B】乙\n" in text
    assert "{" not in text


def test_example_is_readable_by_the_reader():
    medterm = _rubric("medterm")
    reading = read_pointwise(medterm.example(), medterm)
    assert reading.scores == {"accuracy": 3, "completeness": 3, "safety": 3, "fluency": 3} and not reading.unsafe
    assert read_pointwise(_rubric(ONE).example(), _rubric(ONE)).scores == {"quality": 6}  # (1 + 10 + 1) // 2
    assert read_pairwise(load_rubric("pairwise").example()) == "A"
    assert read_choice(load_rubric("mc_extract").example(), OPTIONS["ABCDE"], False) == ("B",)


def test_retry_repeats_the_prompt_and_shows_an_example(tmp_path):
    medterm = _rubric("medterm")
    prompt = medterm.render({"question": "Q", "reference": "R", "answer": "A"})
    again = medterm.retry(prompt)
    assert again == prompt + "\n\n" + DEFAULT_RETRY.replace("{example}", medterm.example())
    assert again.endswith("准确性：[[3]]\n完整性：[[3]]\n安全性：[[3]]\n流畅性：[[3]]\n危险：否\n理由：……")

    own = read_rubric(_write(tmp_path, {**BASE, "retry_hint": "Again, like this:\n{example}"}))
    assert own.retry("P") == "P\n\nAgain, like this:\n准确性：[[3]]\n安全性：[[3]]\n危险：否\n理由：……"
    assert load_rubric("pairwise").retry("P") == "P\n\n" + DEFAULT_RETRY.replace("{example}", "结论：[[A]]\n理由：……")


def test_sha_follows_the_content_not_the_path(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = read_rubric(_write(tmp_path / "a", BASE))
    assert read_rubric(_write(tmp_path / "b", BASE)).sha == first.sha
    assert len(first.sha) == 16 and int(first.sha, 16) >= 0

    def changed(**criterion) -> str:
        criteria = [{**BASE["criteria"][0], **criterion}, BASE["criteria"][1]]
        return read_rubric(_write(tmp_path, {**BASE, "criteria": criteria}, "changed.yaml")).sha

    assert changed(description="是否正确、完整") != first.sha
    assert changed(title="医学准确性") != first.sha
    assert changed(weight=1) != first.sha
    assert read_rubric(_write(tmp_path, {**BASE, "prompt": BASE["prompt"] + "\n"}, "p.yaml")).sha != first.sha


# ---- the loader's refusals ----------------------------------------------------------------
DROP = object()
ACC = {"name": "accuracy", "title": "准确性"}

# (id, the rubric: a change to BASE or the file's raw text, what the message says, xfail reason or None)
REFUSALS = [
    ("unknown_key", {"weights": [2, 1]},
     ["unknown key 'weights'", "a rubric's keys are rubric, kind, prompt"], None),
    ("unknown_criterion_key", {"criteria": [{**ACC, "wieght": 2}], "safety": DROP, "unsafe_at_most": DROP},
     ["unknown key 'criteria.0.wieght'", "name, title, description, weight, aliases"], None),
    ("no_criteria", {"criteria": DROP, "safety": DROP, "unsafe_at_most": DROP},
     ["a pointwise rubric needs criteria: [{name, title}, ...]"], None),
    ("empty_criteria", {"criteria": [], "safety": DROP, "unsafe_at_most": DROP},
     ["a pointwise rubric needs criteria"], None),
    ("scale_reversed", {"scale": [5, 1]}, ["scale [5, 1]", "give [low, high] with low < high, e.g. [1, 5]"], None),
    ("scale_one_point", {"scale": [3, 3]}, ["scale [3, 3]", "low < high"], None),
    ("duplicate_criteria", {"criteria": [ACC, ACC], "safety": DROP, "unsafe_at_most": DROP},
     ["criteria: a name is given twice (accuracy, accuracy)"], None),
    ("safety_names_no_criterion", {"safety": "danger"},
     ["safety: 'danger' is not one of the criteria (accuracy, safety)"], None),
    ("unsafe_at_most_without_safety", {"safety": DROP},
     ["unsafe_at_most: name the safety criterion with safety: NAME"], None),
    ("prompt_without_answer", {"prompt": "{question}\n{format}"},
     ["prompt: a pointwise rubric shows {answer}; add it to the prompt"], None),
    ("choice_prompt_without_answer", {"kind": "choice", "prompt": "{question}\n{format}"},
     ["a choice rubric shows {answer}; add it to the prompt"], None),
    ("pairwise_without_answer_b", {"kind": "pairwise", "criteria": DROP, "safety": DROP, "unsafe_at_most": DROP,
                                   "prompt": "【回答A】{answer_a}\n{format}"},
     ["a pairwise rubric shows {answer_b}; add it to the prompt"], None),
    ("pairwise_without_either", {"kind": "pairwise", "prompt": "{answer}"},
     ["a pairwise rubric shows {answer_a} and {answer_b}"], None),
    ("unknown_kind", {"kind": "judge"},
     ["field 'kind'", "'pointwise', 'pairwise' or 'choice'", "fix it in the rubric"], None),
    ("criterion_name_not_snake_case", {"criteria": [{**ACC, "name": "Accuracy"}], "safety": DROP, "unsafe_at_most": DROP},
     ["field 'criteria.0.name'", "fix it in the rubric"], None),
    ("criterion_weight_zero", {"criteria": [{**ACC, "weight": 0}], "safety": DROP, "unsafe_at_most": DROP},
     ["field 'criteria.0.weight'", "greater than 0"], None),
    ("missing_prompt", {"prompt": DROP}, ["field 'prompt'", "Field required"], None),
    ("invalid_yaml", 'rubric: bad\nkind: pointwise\nscale: [1, 5]]\nprompt: "{answer}"\n',
     [":3: not valid YAML", "fix the rubric's syntax there"], None),
    ("not_a_mapping", "- rubric: bad\n- kind: pointwise\n",
     ["a rubric is a YAML mapping with rubric, kind and prompt keys"], None),
    ("empty_file", "", ["a rubric is a YAML mapping"], None),
]


def _refusal(row):
    rid, rubric, says, why = row
    marks = [pytest.mark.xfail(reason=why, strict=True)] if why else []
    return pytest.param(rubric, says, id=rid, marks=marks)


@pytest.mark.parametrize("rubric,says", [_refusal(r) for r in REFUSALS])
def test_bad_rubric_is_refused_with_the_file_and_the_fix(tmp_path, rubric, says):
    path = tmp_path / "bad.yaml"
    if isinstance(rubric, str):
        path.write_text(rubric, encoding="utf-8")
    else:
        _write(tmp_path, {k: v for k, v in {**BASE, **rubric}.items() if v is not DROP}, path.name)
    with pytest.raises(UserError) as err:
        read_rubric(path)
    message = str(err.value)
    assert message.startswith(str(path) + ":"), message
    for fragment in says:
        assert fragment in message, message


def test_base_rubric_is_accepted(tmp_path):
    rubric = read_rubric(_write(tmp_path, BASE))
    assert [c.name for c in rubric.criteria] == ["accuracy", "safety"] and rubric.unsafe_at_most == 2


def test_unknown_rubric_name_says_did_you_mean():
    with pytest.raises(UserError) as err:
        load_rubric("medtrem")
    message = str(err.value)
    assert message.startswith("rubric 'medtrem': no such rubric (did you mean 'medterm'?)"), message
    assert "known: " in message and "medterm" in message and "or give the path of a .yaml rubric" in message


def test_missing_rubric_file_and_a_folder(tmp_path):
    with pytest.raises(UserError, match="no such rubric file; give a rubric name or the path of a .yaml rubric") as err:
        load_rubric("nope.yaml", tmp_path)
    assert str(tmp_path / "nope.yaml") in str(err.value)
    with pytest.raises(UserError, match="is a folder; give the path of a .yaml rubric file"):
        read_rubric(tmp_path)
