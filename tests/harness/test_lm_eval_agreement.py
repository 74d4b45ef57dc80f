"""aimed-eval and lm-evaluation-harness 0.4.13 agree on exported tasks.

200 single-answer items of the real CMExam val.csv, as a user task (``loader: cmexam``),
scored in loglikelihood mode with one few-shot example by ``aimed-eval run`` on the tiny
Llama, then exported with ``aimed-eval export-lm-eval`` and scored by lm-eval itself
(in-process ``simple_evaluate``, HF backend, ``add_bos_token=False``). Per item: the same
prompt, the same argmax letter, per-choice log-likelihoods within 1e-4; and the same acc.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

# lm-eval and datasets must never reach the hub; datasets reads these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

N_ITEMS = 200
TASK = "cmexam_agree200"
LETTERS = "ABCDE"


def _single_answer_subset(data_dir: Path, folder: Path) -> Path:
    """The first N_ITEMS single-answer rows of val.csv, in CMExam's own CSV format, plus a spec."""
    src = data_dir / "cmexam" / "val.csv"
    with src.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [r for r in reader if len(r["Answer"].strip()) == 1 and r["Answer"].strip() in LETTERS]
    rows = rows[:N_ITEMS]
    assert len(rows) == N_ITEMS
    with (folder / "val200.csv").open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    spec = folder / f"{TASK}.yaml"
    spec.write_text(
        f"task: {TASK}\n"
        "version: 1\n"
        "kind: multiple_choice\n"
        "description: 以下是中国医师资格考试的选择题，请选出正确答案。\n"
        "data:\n"
        "  loader: cmexam\n"
        "  path: val200.csv\n"
        "num_fewshot: 1\n"
        "metrics: [acc]\n",
        encoding="utf-8")
    return spec


def _lm_eval(model_dir: Path, include: Path, task: str) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(include), include_defaults=False)
    return lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32,add_bos_token=False",
        tasks=[task], task_manager=tm, log_samples=True, batch_size=32, device="cpu",
        random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)


def test_aimed_and_lm_eval_agree_on_200_cmexam_items(cli, tiny_llama, data_dir, tmp_path):
    spec = _single_answer_subset(data_dir, tmp_path)

    # 1. aimed-eval run, loglikelihood mode.
    run_dir = tmp_path / "run"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", spec, "--mode", "loglikelihood",
                       "--dtype", "float32", "--device", "cpu", "--batch_size", "32",
                       "--output_dir", run_dir, "--no_cache", "--quiet")
    assert code == 0, err
    ours = [json.loads(x) for x in (run_dir / f"samples_{TASK}.jsonl").read_text(encoding="utf-8").splitlines()]
    ours_acc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["results"][TASK]["acc,none"]
    assert len(ours) == N_ITEMS

    # 2. Export.
    exp = tmp_path / "export"
    code, out, err = cli("export-lm-eval", "--tasks", spec, "--out", exp, "--mode", "loglikelihood")
    assert code == 0, err
    name = "aimed_" + TASK
    assert "add_bos_token=False" in out
    cfg_text = (exp / f"{name}.yaml").read_text(encoding="utf-8")
    assert "num_fewshot: 0" in cfg_text and "target_delimiter: ''" in cfg_text
    docs = [json.loads(x) for x in (exp / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    # Same prompts by construction; the one-shot example is baked in.
    assert [d["prompt"] for d in docs] == [r["arguments"]["context"] for r in ours]
    assert all(d["prompt"].count("答案：") == 2 for d in docs)
    assert [d["choices"] for d in docs] == [r["arguments"]["continuations"] for r in ours]

    # 3. lm-eval 0.4.13 on the export.
    res = _lm_eval(tiny_llama, exp, name)
    assert res["configs"][name]["num_fewshot"] == 0
    theirs = {s["doc_id"]: s for s in res["samples"][name]}
    assert sorted(theirs) == list(range(N_ITEMS))

    # 4. Item by item: the same prompt, log-likelihoods within 1e-4, the same choice.
    worst = 0.0
    for rec in ours:
        s = theirs[rec["doc_id"]]
        # in-process samples: arguments is a list of (context, continuation) pairs
        assert [tuple(a) for a in s["arguments"]] == [(rec["arguments"]["context"], c)
                                                     for c in rec["arguments"]["continuations"]]
        ours_ll = [r[0] for r in rec["resps"]]
        their_ll = [float(r[0]) for r in s["filtered_resps"]]
        assert len(their_ll) == len(ours_ll)
        for a, b in zip(ours_ll, their_ll):
            worst = max(worst, abs(a - b))
            assert a == pytest.approx(b, abs=1e-4), (rec["doc_id"], ours_ll, their_ll)
        letters = rec["arguments"]["continuations"]
        their_choice = letters[max(range(len(their_ll)), key=lambda i: (their_ll[i], -i))]
        assert rec["filtered_resps"] == [their_choice], rec["doc_id"]
        assert rec["acc"] == s["acc"], rec["doc_id"]

    # 5. The same accuracy.
    assert res["results"][name]["acc,none"] == pytest.approx(ours_acc, abs=1e-12)
    print(f"agreement: {N_ITEMS} items, acc {ours_acc:.3f}, max |dll| {worst:.2e}")


def test_lm_eval_adds_bos_by_default_and_add_bos_token_false_matches_us(tiny_llama, tmp_path):
    """Why the export says ``add_bos_token=False``: lm-eval 0.4.13 follows the tokenizer's
    default, which prepends BOS for Llama-family tokenizers; aimed-eval adds none."""
    import shutil

    from lm_eval.models.huggingface import HFLM
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from aimed.harness.models.args import ModelArgs
    from aimed.harness.models.hf import HFBackend

    model = tmp_path / "bos-llama"
    shutil.copytree(tiny_llama, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok._tokenizer.post_processor = TemplateProcessing(  # as Llama-2's tokenizer does
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.bos_token_id)])
    tok.save_pretrained(model)
    bos = tok.bos_token_id
    ctx, cont = "以下是选择题\n答案：", "A"

    ours = HFBackend(ModelArgs(model=str(model), device="cpu", dtype="float32")).encode_pair(ctx, cont)
    default = HFLM(pretrained=str(model), device="cpu", dtype="float32")._encode_pair(ctx, cont)
    no_bos = HFLM(pretrained=str(model), device="cpu", dtype="float32", add_bos_token=False)._encode_pair(ctx, cont)
    assert ours[0][0] != bos
    assert default[0][0] == bos and default[0][1:] == ours[0] and default[1] == ours[1]
    assert no_bos == ours


def test_exported_yamls_load_in_lm_eval(cli, tmp_path):
    from lm_eval.tasks import TaskManager

    for mode in ("loglikelihood", "cloze", "generate"):
        out = tmp_path / mode
        code, _, err = cli("export-lm-eval", "--tasks", "medqa", "--out", out, "--mode", mode, "--limit", "5",
                           "--num_fewshot", "1")
        assert code == 0, err
        tm = TaskManager(include_path=str(out), include_defaults=False)
        assert {"aimed_medqa", "aimed_cmmlu_medical", "aimed_abstractqa", "aimed_cmexam"} <= set(tm.all_tasks)
        loaded = tm.load(["aimed_medqa"])
        assert set(loaded["groups"]) == {"aimed_medqa", "aimed_cmmlu_medical", "aimed_abstractqa"}
        tasks = list(loaded["tasks"].values())
        assert len(tasks) == 14
        for t in tasks:
            docs = list(t.test_docs())
            assert len(docs) == 5 and t.config.num_fewshot == 0
            assert t.fewshot_context(docs[0], 0) == docs[0]["prompt"]
            kind = "multiple_choice" if mode != "generate" and "title" not in t.config.task \
                and "keywords" not in t.config.task and "medterm" not in t.config.task else "generate_until"
            assert t.OUTPUT_TYPE == kind, t.config.task

    # Multi-answer items: gold is a list for every doc, so lm-eval scores multiple targets.
    out = tmp_path / "multi"
    code, stdout, err = cli("export-lm-eval", "--tasks", "cmexam", "--out", out, "--prefix", "x_")
    assert code == 0, err
    assert "210 multi-answer" in stdout
    text = (out / "x_cmexam.yaml").read_text(encoding="utf-8")
    assert "lm-eval's acc counts the item" in text
    (task,) = TaskManager(include_path=str(out), include_defaults=False).load(["x_cmexam"])["tasks"].values()
    assert task.multiple_target and all(isinstance(d["gold"], list) for d in task.test_docs())

    code, _, err = cli("export-lm-eval", "--tasks", "no_such_task", "--out", tmp_path / "bad")
    assert code == 2 and "unknown task" in err and "Traceback" not in err


def test_circular_export_scored_by_lm_eval_matches_every_rotation(cli, tiny_llama, tmp_path):
    """``export-lm-eval --circular``: lm-eval scores every rotation of every item as aimed-eval's
    ``--circular`` run does: the same choice per rotation, so its acc over the exported docs
    is our mean over rotations."""
    run_dir, exp = tmp_path / "run", tmp_path / "export"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--circular", "--dtype", "float32",
                       "--output_dir", run_dir, "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    ours = [json.loads(x) for x in (run_dir / "samples_demo_mcq.jsonl").read_text(encoding="utf-8").splitlines()]
    assert cli("export-lm-eval", "--tasks", "demo_mcq", "--circular", "--out", exp)[0] == 0
    docs = [json.loads(x) for x in (exp / "data" / "aimed_demo_mcq.jsonl").read_text(encoding="utf-8").splitlines()]
    res = _lm_eval(tiny_llama, exp, "aimed_demo_mcq")
    theirs = {docs[s["doc_id"]]["id"]: s["acc"] for s in res["samples"]["aimed_demo_mcq"]}
    mine = {r["doc"]["id"]: r["acc"] for r in ours if len(r["doc"]["answer"]) == 1}
    mine.update({f"{r['doc']['id']}@rot{c['rotation']}": c["acc"] for r in ours if len(r["doc"]["answer"]) == 1
                 for c in r["circular"]})
    assert len(mine) == 20 * 5 - 2  # 20 single-answer items, five options but two of four
    assert {k: theirs[k] for k in mine} == mine  # multi-answer items: lm-eval reads them its own way
