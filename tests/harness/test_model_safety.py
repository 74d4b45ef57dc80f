"""What loading a checkpoint may run: a checkpoint's own modelling code only with
--trust_remote_code (and the run says when it was not run), pickle weights only with
--allow_pickle (and then they load and score like safetensors)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

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


# Checkpoints whose architecture is their own code: Baichuan, ChatGLM2/3 and InternLM2
# publish a model_type transformers does not know, with configuration_*.py and modeling_*.py
# beside the weights. Here each is the tiny Llama under that family's names.
OWN_CODE_FAMILIES = [("baichuan", "BaichuanForCausalLM", "BaichuanConfig"),
                     ("chatglm", "ChatGLMForConditionalGeneration", "ChatGLMConfig"),
                     ("internlm2", "InternLM2ForCausalLM", "InternLM2Config")]
OWN_CONFIG = '''
from transformers import LlamaConfig


class {config}(LlamaConfig):
    model_type = "{model_type}"
'''
OWN_MODEL = '''
import os
from pathlib import Path

from transformers import LlamaForCausalLM

from .configuration_{model_type} import {config}

Path(os.environ["AIMED_REMOTE_SENTINEL"]).write_text("ran")


class {cls}(LlamaForCausalLM):
    config_class = {config}
'''


def _own_architecture_checkpoint(tiny: Path, out: Path, model_type: str, cls: str, config_cls: str) -> Path:
    shutil.copytree(tiny, out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config.update(model_type=model_type, architectures=[cls],
                  auto_map={"AutoConfig": f"configuration_{model_type}.{config_cls}",
                            "AutoModelForCausalLM": f"modeling_{model_type}.{cls}"})
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    names = dict(model_type=model_type, cls=cls, config=config_cls)
    (out / f"configuration_{model_type}.py").write_text(OWN_CONFIG.format(**names), encoding="utf-8")
    (out / f"modeling_{model_type}.py").write_text(OWN_MODEL.format(**names), encoding="utf-8")
    return out


@pytest.mark.parametrize("model_type,cls,config_cls", OWN_CODE_FAMILIES)
def test_own_architecture_loads_only_with_trust_and_scores_as_its_weights(
        cli, tiny_llama, tmp_path, monkeypatch, model_type, cls, config_cls):
    sentinel = tmp_path / "sentinel"
    monkeypatch.setenv("AIMED_REMOTE_SENTINEL", str(sentinel))
    # the checkpoint's code is copied into a modules folder of the test's own, not ~/.cache
    # (transformers read HF_MODULES_CACHE when imported, so its module's copy is set, and the
    # transformers_modules package is imported afresh from there)
    monkeypatch.setattr("transformers.dynamic_module_utils.HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m.split(".")[0] == "transformers_modules"]:
        monkeypatch.delitem(sys.modules, name)
    ckpt = _own_architecture_checkpoint(tiny_llama, tmp_path / f"{tmp_path.name}-{model_type}", model_type, cls,
                                        config_cls)
    args = ["--tasks", "demo_mcq", "--limit", "4", "--no_cache", "--no_index", "--quiet"]
    code, out, err = cli("run", "--model", ckpt, *args, "--output_dir", tmp_path / "refused")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, err
    assert "--trust_remote_code" in err and repr(model_type) in err and str(ckpt) in err
    assert not sentinel.exists() and not (tmp_path / "refused").exists()

    code, _, err = cli("run", "--model", ckpt, *args, "--trust_remote_code", "--output_dir", tmp_path / "own")
    assert code == 0, err
    assert sentinel.read_text() == "ran"  # its modelling code ran
    assert cli("run", "--model", tiny_llama, *args, "--output_dir", tmp_path / "llama")[0] == 0
    runs = [[json.loads(x)["resps"] for x in (tmp_path / d / "samples_demo_mcq.jsonl").read_text(
        encoding="utf-8").splitlines()] for d in ("own", "llama")]
    assert runs[0] == runs[1]  # the same weights through its own class: the same log-likelihoods
