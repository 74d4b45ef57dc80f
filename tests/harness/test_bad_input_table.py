"""The bad-input table (bad_input_cases.yaml): every case is one line on stderr, exit 2,
no traceback, nothing written outside the files the case allows, the index unchanged.

The table is data; this file only prepares the assets its placeholders name and runs
each case in a fresh folder, as a user's shell would (the folder is the current one, HOME
is a folder of the test's own, so ``~`` is safe to name)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

CASES = yaml.safe_load((Path(__file__).with_name("bad_input_cases.yaml")).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def assets(tmp_path_factory, tiny_llama, tiny_qwen2) -> dict[str, str]:
    """What the placeholders name, built once: runs, an index, odd checkpoints."""
    from aimed.harness.cli import main

    root = tmp_path_factory.mktemp("bad-input-assets")
    index = root / "index.sqlite"
    for name in ("run_a", "run_b"):
        code = main(["run", "--model", str(tiny_llama), "--tasks", "demo_mcq", "--limit", "6", "--output_dir",
                     str(root / name), "--db", str(index), "--no_cache", "--quiet"])
        assert code == 0
    return {"tiny": str(tiny_llama), "run_a": str(root / "run_a"), "run_b": str(root / "run_b"),
            "index": str(index), "qwen_adapter": str(_adapter(tiny_qwen2, root / "qwen-adapter")),
            "pickle_ckpt": str(_pickle_checkpoint(tiny_llama, root / "pickle-ckpt")),
            "evil_ckpt": str(_evil_checkpoint(tiny_llama, root / "evil-ckpt")),
            "foreign_sqlite": str(_foreign_sqlite(root / "foreign.sqlite")),
            "demo_pipeline": str(_pipeline(root / "pipeline.yaml", tiny_llama)),
            "data": os.environ["AIMED_DATA"], "root": str(root)}


def _adapter(base: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(out)
    return out


def _pickle_checkpoint(base: Path, out: Path) -> Path:
    """The tiny Llama with its weights as ``pytorch_model.bin`` (transformers 5 saves
    safetensors only, so the state dict is pickled here)."""
    import torch
    from safetensors.torch import load_file

    out.mkdir()
    for f in base.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, out / f.name)
    torch.save(load_file(base / "model.safetensors"), out / "pytorch_model.bin")
    return out


class _Evil:
    """Unpickling this would create the file named in the sentinel: it must never happen."""

    def __reduce__(self):
        return (os.system, (f"touch {EVIL_SENTINEL}",))


EVIL_SENTINEL = Path(os.environ.get("TMPDIR", "/tmp")) / f"aimed-evil-pickle-ran-{os.getpid()}"


def _evil_checkpoint(base: Path, out: Path) -> Path:
    import pickle

    out.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (base / name).exists():
            shutil.copy(base / name, out / name)
    (out / "pytorch_model.bin").write_bytes(pickle.dumps(_Evil()))
    return out


def _foreign_sqlite(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    db.execute("INSERT INTO notes (text) VALUES ('mine')")
    db.commit()
    db.close()
    return path


def _pipeline(path: Path, model: Path) -> Path:
    path.write_text(f"base_models: [{{name: b, model: {json.dumps(str(model))}}}]\nstages: [pt]\n"
                    "stage_config: {pt: {train_files: [t.txt]}}\n", encoding="utf-8")
    (path.parent / "t.txt").write_text("医学文本\n", encoding="utf-8")
    return path


def _fill(text: str, assets: dict[str, str]) -> str:
    for key, value in assets.items():
        text = text.replace("{" + key + "}", value)
    return text


def _make(work: Path, files: dict, assets: dict[str, str]) -> None:
    for rel, content in (files or {}).items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict) and "copy" in content:
            source = Path(_fill(content["copy"], assets))
            shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
        elif isinstance(content, dict) and "hex" in content:
            target.write_bytes(bytes.fromhex(content["hex"]))
        elif isinstance(content, dict) and content.get("dir"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_text(_fill(str(content), assets), encoding="utf-8")


def _tree(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.name.endswith(("-wal", "-shm")):  # SQLite's own, made by readers of a WAL index
            continue
        if p.is_file():
            out[str(p.relative_to(folder))] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        elif p.is_dir():
            out[str(p.relative_to(folder)) + "/"] = ()
    return out


def visible_lines(err: str) -> list[str]:
    """The non-empty lines a terminal shows: a bar redrawn or cleared with carriage returns
    leaves only what was written after its last one."""
    return [seg.split("\r")[-1] for seg in err.split("\n") if seg.split("\r")[-1].strip()]


class _Destroyed(Exception):
    pass


def _outcome(case: dict, code: int, err: str) -> str:
    """How a case ended, for the counts of the closing notes (AIMED_TABLE_REPORT=FILE)."""
    if "Traceback" in err:
        return "traceback"
    if code != case.get("exit", 2):
        return "accepted (silent)"
    lines = visible_lines(err)
    return "clean" if case["message"] in err and 1 <= len(lines) <= 2 else "unclear message"


def _report(case: dict, outcome: str) -> None:
    if os.environ.get("AIMED_TABLE_REPORT"):
        with open(os.environ["AIMED_TABLE_REPORT"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"id": case["id"], "outcome": outcome}) + "\n")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case, assets, tmp_path, monkeypatch, capsys):
    from aimed.harness.cli import main

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AIMED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AIMED_DB_WAIT_S", "2")
    monkeypatch.delenv("AIMED_DB", raising=False)
    for key, value in (case.get("env") or {}).items():
        monkeypatch.setenv(key, _fill(value, assets))
    monkeypatch.setattr(sys, "stdin", io.StringIO(case.get("stdin", "")))
    _make(work, case.get("files"), assets)
    before, assets_before = _tree(work), _tree(Path(assets["root"]))
    home_before = _tree(home)

    # A safety net, not a stand-in: should a regression ever aim a removal outside the test's
    # folders (an --output_dir of / or ~ replaced), the case fails instead of the machine.
    real_rmtree = shutil.rmtree
    allowed_root = Path(assets["root"]).parent.parent.resolve()

    def guarded_rmtree(path, *args, **kwargs):
        if not Path(path).resolve().is_relative_to(allowed_root):
            raise _Destroyed(f"would remove {path}")
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", guarded_rmtree)
    try:
        code = main([_fill(a, assets) for a in case["argv"]])
    except _Destroyed:
        _report(case, "destroys data")
        raise
    except Exception:
        _report(case, "deletes files" if set(before) - set(_tree(work)) else "traceback")
        raise
    err = capsys.readouterr().err
    lost = set(before) - set(_tree(work))
    _report(case, "deletes files" if lost else _outcome(case, code, err))

    assert code == case.get("exit", 2), err
    assert "Traceback" not in err
    lines = visible_lines(err)
    assert 1 <= len(lines) <= 2, err
    assert case["message"] in err, err
    if case.get("absent"):
        assert case["absent"] not in err, err
    allowed = tuple(case.get("new_files", [])) + tuple(case.get("changed_ok", []))
    after = _tree(work)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    changed = {k for k in changed if not k.startswith(allowed)} if allowed else changed
    assert not changed, f"files written or changed: {sorted(changed)}"
    assert _tree(Path(assets["root"])) == assets_before, "the assets (runs, index) were changed"
    assert _tree(home) == home_before, "the home folder was written"
    assert not EVIL_SENTINEL.exists(), "a pickle's code ran"
