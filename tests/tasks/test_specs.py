"""Every built-in spec parses; groups expand as documented; spec mistakes are UserErrors."""

from __future__ import annotations

import pytest

import aimed.tasks  # noqa: F401
from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.taskregistry import builtin_specs, group_members, load_spec, resolve_tasks
from aimed.harness.taskspec import GroupSpec, TaskSpec, parse_spec

CMMLU = ["anatomy", "clinical_knowledge", "college_medical_statistics", "college_medicine", "genetics",
         "nutrition", "professional_medicine", "traditional_chinese_medicine", "virology"]
METRICS = {"acc", "set_f1", "rouge1", "rouge2", "rougeL", "bleu4", "char_f1", "keyword_f1",
           "cblue_micro_f1", "cblue_macro_f1", "cblue_weighted_f1"}


def test_every_builtin_spec_parses():
    specs = builtin_specs()
    expected = {"cmexam", "cmexam_test10", "cmmlu_medical", "medterm", "abstractqa", "abstractqa_title",
                "abstractqa_keywords", "abstractqa_discipline", "medqa_mcmle", "medqa", "demo", "demo_mcq",
                "demo_medterm", *(f"cmmlu_{s}" for s in CMMLU)}
    assert expected <= set(specs)
    for name in specs:
        spec, _ = load_spec(name)
        if isinstance(spec, TaskSpec):
            assert spec.data.loader in plugins.LOADERS, name
            assert set(spec.metrics) <= METRICS, name
        else:
            assert isinstance(spec, GroupSpec)
            resolve_tasks(name)  # every member exists


def test_medqa_suite_expands():
    assert [t.name for t in resolve_tasks("medqa")] == [
        "cmexam", *(f"cmmlu_{s}" for s in CMMLU), "medterm",
        "abstractqa_title", "abstractqa_keywords", "abstractqa_discipline"]
    assert group_members("demo") == ["demo_mcq", "demo_medterm"]


def test_real_data_tasks_load(data_dir):
    counts = {t.name: len(t.samples()) for t in resolve_tasks("medqa,cmexam_test10")}
    assert counts["cmexam"] == 6810 and counts["cmexam_test10"] == 9 and counts["medterm"] == 273
    assert sum(v for k, v in counts.items() if k.startswith("cmmlu_")) == 1815
    assert counts["abstractqa_title"] == counts["abstractqa_discipline"] == 106
    (t,) = resolve_tasks("cmmlu_virology")
    assert len(t.fewshot_pool()) == 5
    (t,) = resolve_tasks("abstractqa_discipline")
    assert len(t.fewshot_pool()) == 103


def test_unknown_spec_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("task: bad\nkind: generation\ndata: {loader: medterm, path: x.jsonl, sep: ','}\n"
                 "metrics: [rougeL]\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.yaml: unknown key 'data\.sep'"):
        parse_spec(p)
    p.write_text("task: bad\nkind: generation\ndata: {loader: medterm, path: x.jsonl}\nmetrics: [rougeL]\n"
                 "num_shots: 3\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.yaml: unknown key 'num_shots'; known keys here: .*num_fewshot"):
        parse_spec(p)


def test_include_lays_a_spec_over_shared_keys(tmp_path):
    """The CMMLU subjects share kind, loader, metrics and version through include:; the
    merged spec is the one a full file would give (same spec hash, so indexes stay comparable)."""
    from aimed.harness.taskregistry import load_spec
    from aimed.harness.taskspec import parse_spec

    spec, path = load_spec("cmmlu_anatomy")
    assert (spec.kind, spec.data.loader, spec.metrics, spec.version, spec.num_fewshot) == \
        ("multiple_choice", "cmmlu", ["acc"], 1, 0)
    full = tmp_path / "cmmlu_anatomy.yaml"
    full.write_text(
        "task: cmmlu_anatomy\nversion: 1\nkind: multiple_choice\n"
        f"description: {spec.description}\n"
        "data:\n  loader: cmmlu\n  path: $AIMED_DATA/cmmlu/test/anatomy.csv\n"
        "  fewshot_path: $AIMED_DATA/cmmlu/dev/anatomy.csv\nnum_fewshot: 0\nmetrics: [acc]\n", encoding="utf-8")
    assert parse_spec(full) == spec
    # the spec's own keys win; nested includes resolve relative to each file
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "a.yaml").write_text("include: b.yaml\nmetrics: [acc, set_f1]\n", encoding="utf-8")
    (tmp_path / "inc" / "b.yaml").write_text("kind: multiple_choice\ndata: {loader: cmexam}\nmetrics: [acc]\n"
                                             "num_fewshot: 2\n", encoding="utf-8")
    own = tmp_path / "own.yaml"
    own.write_text("include: inc/a.yaml\ntask: own\ndata: {path: d.csv}\nnum_fewshot: 1\n", encoding="utf-8")
    merged = parse_spec(own)
    assert (merged.metrics, merged.num_fewshot, merged.data.loader, merged.data.path) == \
        (["acc", "set_f1"], 1, "cmexam", "d.csv")
