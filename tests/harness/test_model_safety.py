"""What loading a checkpoint may run: a checkpoint's own modelling code only with
--trust_remote_code (and the run says when it was not run), pickle weights only with
--allow_pickle (and then they load and score like safetensors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MODULE = '''
from pathlib import Path
import os
Path(os.environ["AIMED_REMOTE_SENTINEL"]).write_text("ran")
from transformers import LlamaForCausalLM


class MineForCausalLM(LlamaForCausalLM):
    pass
'''


def _remote_code_checkpoint(tiny: Path, out: Path) -> Path:
    shutil.copytree(tiny, out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_mine.MineForCausalLM"}
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (out / "modeling_mine.py").write_text(MODULE, encoding="utf-8")
    return out


def test_own_code_is_not_run_without_trust_and_the_run_says_so(cli, tiny_llama, tmp_path, monkeypatch):
    sentinel = tmp_path / "sentinel"
    monkeypatch.setenv("AIMED_REMOTE_SENTINEL", str(sentinel))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    ckpt = _remote_code_checkpoint(tiny_llama, tmp_path / "own-code")
    code, _, err = cli("run", "--model", ckpt, "--tasks", "demo_mcq", "--limit", "4", "--output_dir", tmp_path / "r",
                       "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    warning = [x for x in err.splitlines() if "warning" in x]
    assert len(warning) == 1 and "modeling_mine.MineForCausalLM" in warning[0]
    assert "was not run" in warning[0] and "LlamaForCausalLM was used instead" in warning[0]
    assert not sentinel.exists()


def test_pickle_weights_load_only_when_allowed_and_score_the_same(cli, tiny_llama, tmp_path):
    import torch
    from safetensors.torch import load_file

    ckpt = tmp_path / "pickled"
    ckpt.mkdir()
    for f in tiny_llama.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, ckpt / f.name)
    torch.save(load_file(tiny_llama / "model.safetensors"), ckpt / "pytorch_model.bin")
    args = ["--tasks", "demo_mcq", "--no_cache", "--no_index", "--quiet"]
    code, _, err = cli("run", "--model", ckpt, *args, "--output_dir", tmp_path / "refused")
    assert code == 2 and "--allow_pickle" in err and not (tmp_path / "refused").exists()
    assert cli("run", "--model", ckpt, *args, "--allow_pickle", "--output_dir", tmp_path / "p")[0] == 0
    assert cli("run", "--model", tiny_llama, *args, "--output_dir", tmp_path / "s")[0] == 0
    scores = [json.loads((tmp_path / d / "results.json").read_text(encoding="utf-8"))["results"]["demo_mcq"]
              for d in ("p", "s")]
    assert scores[0]["acc,none"] == scores[1]["acc,none"]
