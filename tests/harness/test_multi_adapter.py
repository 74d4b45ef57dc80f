"""Several LoRA adapters of one base in one `aimed-eval run`: the base loads once, each
adapter gets its own run folder, fingerprint and index record, and its scores equal a
separate run of that adapter alone."""

import json
import sqlite3
from pathlib import Path

import pytest
import torch


def _adapter(base: Path, out: Path, seed: int, manifest: dict | None = None) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so each one changes the model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(out)
    if manifest:
        (out / "aimed_checkpoint.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def adapters(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return [_adapter(tiny_llama, root / f"sft-{i}", seed=10 + i, manifest={"stage": "sft", "step": 100 * i})
            for i in range(1, 4)]


def _samples(run_dir: Path, task: str = "demo_mcq") -> list[dict]:
    return [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def _loglikelihoods(run_dir: Path) -> list[float]:
    return [score[0] for r in _samples(run_dir) for score in r["resps"]]


def test_three_adapters_one_load_own_folders_fingerprints_and_index(cli, tiny_llama, adapters, tmp_path,
                                                                   monkeypatch):
    from aimed.harness.models import hf

    loads = []
    real_load = hf.load_model
    monkeypatch.setattr(hf, "load_model", lambda args, *rest: loads.append(args) or real_load(args, *rest))
    out, db = tmp_path / "runs", tmp_path / "index.sqlite"
    code, stdout, err = cli("run", "--model", tiny_llama, "--lora_model", ",".join(map(str, adapters)),
                            "--tasks", "demo_mcq", "--output_dir", out, "--cache_dir", tmp_path / "cache",
                            "--db", db, "--only_cpu", "--dtype", "float32", "--quiet")
    assert code == 0, err
    assert len(loads) == 1  # the base was loaded once, the adapters swapped in
    assert sorted(p.name for p in out.iterdir()) == ["sft-1", "sft-2", "sft-3"]
    runs = [_results(out / a.name) for a in adapters]
    fingerprints = [r["aimed"]["model"]["fingerprint"] for r in runs]
    assert len(set(fingerprints)) == 3
    for r, a in zip(runs, adapters):
        assert r["aimed"]["model"]["adapters"] == [str(a)]
        assert r["aimed"]["model"]["args"]["lora_model"] == [str(a)]
        assert r["aimed"]["model"]["manifest"]["step"] == int(a.name[-1]) * 100
    # The adapters really differ, so a run that kept the first adapter would be caught.
    lls = [_loglikelihoods(out / a.name) for a in adapters]
    assert max(abs(x - y) for x, y in zip(lls[0], lls[1])) > 1e-3
    with sqlite3.connect(db) as con:
        recorded = {row[0] for row in con.execute("SELECT fingerprint FROM runs")}
    assert recorded == set(fingerprints)

    # Each adapter alone (no cache) scores exactly what the shared-base run scored for it.
    for a in (adapters[1], adapters[2]):
        alone = tmp_path / f"alone-{a.name}"
        code, _, err = cli("run", "--model", tiny_llama, "--lora_model", a, "--tasks", "demo_mcq", "--output_dir",
                           alone, "--no_cache", "--no_index", "--only_cpu", "--dtype", "float32", "--quiet")
        assert code == 0, err
        assert _results(alone)["aimed"]["model"]["fingerprint"] == _results(out / a.name)["aimed"]["model"]["fingerprint"]
        assert [r["filtered_resps"] for r in _samples(alone)] == [r["filtered_resps"] for r in _samples(out / a.name)]
        assert _loglikelihoods(alone) == pytest.approx(_loglikelihoods(out / a.name), abs=1e-5)

    # The same adapters named as --model folders: the base comes from their adapter_config.json,
    # and the fingerprints (so the cached answers) are the same runs'.
    code, _, err = cli("run", "--model", ",".join(map(str, adapters)), "--tasks", "demo_mcq", "--output_dir",
                       tmp_path / "as-models", "--cache_dir", tmp_path / "cache", "--no_index", "--only_cpu",
                       "--dtype", "float32", "--quiet")
    assert code == 0, err
    again = [_results(tmp_path / "as-models" / a.name) for a in adapters]
    assert [r["aimed"]["model"]["fingerprint"] for r in again] == fingerprints
    assert all(r["aimed"]["timings"]["demo_mcq"]["computed"] == 0 for r in again)


@pytest.fixture(scope="module")
def qwen_adapter(tiny_qwen2, tmp_path_factory):
    return _adapter(tiny_qwen2, tmp_path_factory.mktemp("other") / "qwen-lora", seed=3)


def test_adapters_of_different_bases_are_refused(cli, tiny_qwen2, adapters, qwen_adapter, tmp_path):
    other = qwen_adapter
    out = tmp_path / "runs"
    for argv in (["--model", f"{adapters[0]},{other}"],
                 ["--model", tiny_qwen2, "--lora_model", f"{adapters[0]},{other}"]):
        code, _, err = cli("run", *argv, "--tasks", "demo_mcq", "--output_dir", out, "--no_cache", "--quiet")
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "share one base" in err and str(other) in err
        assert not out.exists()


def test_bad_adapter_lists(cli, tiny_llama, adapters, tmp_path):
    base = ["--tasks", "demo_mcq", "--output_dir", tmp_path / "r", "--no_cache", "--quiet"]
    code, _, err = cli("run", "--model", f"{adapters[0]},{tiny_llama}", *base)
    assert code == 2 and "not a LoRA adapter folder" in err and str(tiny_llama) in err
    code, _, err = cli("run", "--model", tiny_llama, "--lora_model", f"{adapters[0]},{adapters[0]}", *base)
    assert code == 2 and "listed twice" in err
    code, _, err = cli("run", "--model", str(adapters[0]), "--lora_model", str(adapters[1]), *base)
    assert code == 2 and "either" in err
    code, _, err = cli("merge", "--model", tiny_llama, "--lora_model", f"{adapters[0]},{adapters[1]}",
                       "--out", tmp_path / "m")
    assert code == 2 and "exactly one adapter" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()
