"""Training stages under a launcher, on the CPU (gloo): two processes of ``torchrun`` /
``accelerate launch`` train sft and dpo with the global batch of one process, write one set
of checkpoints, one manifest each, one scored run each and one stage marker, and follow
the single-process loss curve. A pipeline runs a stage as such a job; a process killed
mid-job fails the stage in one line, records nothing as done, and a rerun starts it again.

FSDP and DeepSpeed need GPUs: benchmarks/gpu_check.sh runs them where a GPU is lent.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aimed.harness.tinymodel import build_tiny_model
from aimed.trainers.demo_cmd import demo_texts

DEMO_DATA = Path(__file__).resolve().parents[2] / "trainers" / "demo_data"
LOSS_TOLERANCE = 1e-3  # the same examples a step either way; only float summation order differs
SFT_ROWS = [{"instruction": f"第{i}题：高血压患者饮食应注意什么？", "input": "",
             "output": "低盐低脂，清淡饮食。" if i % 2 else "多运动，规律作息，按时服药。"} for i in range(32)]
PAIRS = [{"question": q, "response_chosen": good, "response_rejected": bad}
         for q, good, bad in [("发热怎么办？", "多喝水。", "多运动。"), ("肥胖怎么办？", "多运动。", "多喝水。")] * 8]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(path: Path, **keys) -> Path:
    base = dict(finetune="full", logging_steps=1, only_cpu=True, eval_tasks=["demo_mcq"], eval_limit=4, seed=0,
                lr_scheduler_type="constant", template_name="raw", print_logs=False)
    path.write_text(yaml.safe_dump({**base, **keys}, allow_unicode=True), encoding="utf-8")
    return path


def _train(config: Path, out: Path, batch: int, launcher: list[str], db: Path) -> subprocess.CompletedProcess:
    stage = config.stem  # sft.yaml, dpo.yaml
    port = str(_free_port())  # the launchers' rendezvous port (port 0 is not "any" to them)
    cmd = [*(a.replace("{port}", port) for a in launcher), "-m", "aimed.harness.cli", "train", "--stage", stage, "--config", str(config),
           "--output_dir", str(out),
           "--per_device_train_batch_size", str(batch), "--eval_db", str(db)]
    return _run(cmd)


def _run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """``cmd`` in a session of its own: a launcher that hangs is stopped with its workers,
    which would otherwise outlive it and keep the machine's cores."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(killed after {timeout} s)"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port={port}"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--main_process_port", "{port}"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(out: Path) -> list[float]:
    final = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((final / "trainer_state.json").read_text(encoding="utf-8"))
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def _runs_by_checkpoint(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT model, count(*) FROM runs GROUP BY model").fetchall())


def _check_one_of_each(out: Path, db: Path, steps: list[int]) -> None:
    assert sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == steps
    assert all((out / f"checkpoint-{s}" / "aimed_checkpoint.json").is_file() for s in steps)
    marker = json.loads((out / "aimed_stage.json").read_text(encoding="utf-8"))
    assert len(marker["checkpoints"]) == len(steps) and all(marker["eval_runs"].values())
    runs = _runs_by_checkpoint(db)
    assert sorted(runs.values()) == [1] * len(steps)  # each checkpoint scored once, not once a process


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("dist")
    sft = _config(root / "sft.yaml", model=str(tiny_llama),
                  train_files=[str(_jsonl(root / "sft.jsonl", SFT_ROWS))], max_steps=6, save_steps=3,
                  max_length=128, learning_rate=5e-3)
    one = _train(sft, root / "sft1", 8, [sys.executable], root / "one.sqlite")
    assert one.returncode == 0, one.stderr[-3000:]
    return root, sft


@pytest.mark.parametrize("launcher", [TORCHRUN, ACCELERATE], ids=["torchrun", "accelerate"])
def test_sft_on_two_processes_follows_one_process(work, launcher):
    root, sft = work
    name = "torchrun" if launcher is TORCHRUN else "accelerate"
    out, db = root / f"sft2-{name}", root / f"two-{name}.sqlite"
    two = _train(sft, out, 4, launcher, db)  # 2 processes x 4 = the single process's batch of 8
    assert two.returncode == 0, two.stderr[-3000:]
    assert _losses(out) == pytest.approx(_losses(root / "sft1"), abs=LOSS_TOLERANCE)
    assert len(_losses(out)) == 6
    _check_one_of_each(out, db, [3, 6])
    assert two.stdout.count("stage sft done") == 1  # the main process reports


def test_dpo_on_two_processes_follows_one_process(work):
    root, _ = work
    dpo = _config(root / "dpo.yaml", model=str(root / "sft1" / "checkpoint-6"),
                  train_files=[str(_jsonl(root / "pairs.jsonl", PAIRS))], max_steps=4, save_steps=4, max_length=64,
                  learning_rate=1e-3)
    one = _train(dpo, root / "dpo1", 8, [sys.executable], root / "dpo1.sqlite")
    two = _train(dpo, root / "dpo2", 4, TORCHRUN, root / "dpo2.sqlite")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert _losses(root / "dpo2") == pytest.approx(_losses(root / "dpo1"), abs=LOSS_TOLERANCE)
    assert _losses(root / "dpo1")[-1] < _losses(root / "dpo1")[0]
    _check_one_of_each(root / "dpo2", root / "dpo2.sqlite", [4])


def test_ppo_on_two_processes_shares_the_rollouts_and_writes_once(sft_and_rm, tmp_path):
    """PPO is a loop of our own: each process rolls out half of every batch, the gradients and
    the figures are averaged, and the main process alone writes the log and the checkpoints."""
    sft, rm, _ = sft_and_rm
    out, db = tmp_path / "ppo", tmp_path / "ppo.sqlite"
    port = str(_free_port())
    cmd = [*(a.replace("{port}", port) for a in TORCHRUN), "-m", "aimed.harness.cli", "train", "--stage", "ppo",
           "--model", str(sft), "--reward_model", str(rm), "--output_dir", str(out), "--eval_db", str(db),
           "--train_files", "train/preference/dpo_zh_500.jsonl", "--max_samples", "8", "--max_steps", "3",
           "--save_steps", "3", "--rollout_batch_size", "4", "--per_device_train_batch_size", "2",
           "--ppo_epochs", "1", "--response_length", "8", "--max_length", "128", "--template_name", "chatglm2",
           "--learning_rate", "1e-3", "--eval_tasks", "demo_mcq", "--eval_limit", "4", "--only_cpu", "true"]
    done = _run(cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "ppo_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # one log, not one a process
    _check_one_of_each(out, db, [3])
    odd = list(cmd)
    odd[odd.index("--rollout_batch_size") + 1] = "3"
    odd = [f"--master_port={_free_port()}" if a.startswith("--master_port") else a for a in odd]
    refused = _run(odd)
    assert refused.returncode != 0 and "give a multiple of the 2 processes" in refused.stderr, refused.stderr[-2000:]


# ---- a pipeline stage as a distributed job --------------------------------------------------
def _pipeline(root: Path, max_steps: int) -> Path:
    config = {
        "output_root": "out",
        "base_models": [{"name": "tiny", "model": "models/tiny"}],
        "stages": ["sft"],
        "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "template_name": "raw", "seed": 0},
        "stage_config": {"sft": {"train_files": ["sft.jsonl"], "max_length": 160, "learning_rate": 5.0e-3,
                                 "max_steps": max_steps, "save_steps": max_steps, "per_device_train_batch_size": 4}},
        "eval": {"tasks": ["demo_mcq"], "limit": 6},
        "launcher": {"command": "torchrun", "args": ["--nproc_per_node=2", f"--master_port={_free_port()}"]},
        "stage_gates": {"sft": {"rules": {"*": {"*": {"max_drop": 1.0}}}}},
    }
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("launched")
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):
        shutil.copyfile(DEMO_DATA / name, root / name)
    build_tiny_model(root / "models" / "tiny", demo_texts(root), arch="llama", seed=0, max_positions=512)
    return root


def _state(root: Path) -> dict:
    return json.loads((root / "out" / "pipeline_state.json").read_text(encoding="utf-8"))


def _workers(parent: int) -> list[int]:
    """The launcher's worker processes (its children that run the train command)."""
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if "train" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]


def test_a_pipeline_runs_a_stage_as_a_torchrun_job_and_a_killed_rank_fails_it_cleanly(pipeline_root, cli):
    root = pipeline_root
    config = _pipeline(root, max_steps=400)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "aimed.harness.cli", "pipeline", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    log = root / "out" / "tiny" / "sft.launch.log"
    try:
        deadline = time.time() + 300
        victim = None
        while time.time() < deadline and victim is None:  # rank 1 of the job, once it trains
            time.sleep(0.5)
            if log.exists() and "sft:" in log.read_text(errors="replace"):
                for launcher in subprocess.run(["pgrep", "-f", "torch.distributed.run"], capture_output=True,
                                               text=True).stdout.split():
                    ranks = _workers(int(launcher))
                    if len(ranks) == 2:
                        victim = max(ranks)
        assert victim is not None, "the job's two processes never started training"
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # a failed assertion: the pipeline and its job go too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    lines = [x for x in err.splitlines() if x.startswith("aimed-eval: error:")]
    assert len(lines) == 1 and "the torchrun job failed" in lines[0] and "redoes the stage" in lines[0], err
    assert "Traceback" not in err
    state = _state(root)
    record = state["lines"]["tiny"]["stages"]["sft"]
    assert record["status"] != "done" and not (root / "out" / "tiny" / "sft" / "aimed_stage.json").exists()

    # the rerun (a short stage now) starts the stage again from a clean folder and finishes it
    _pipeline(root, max_steps=4)
    code, out, err = cli("pipeline", "--config", config)
    assert code == 0, err
    record = _state(root)["lines"]["tiny"]["stages"]["sft"]
    assert record["status"] == "done" and record["train_metrics"]["steps"] == 4
    assert [c["path"].rsplit("-", 1)[1] for c in record["checkpoints"]] == ["4"]
    assert "as a torchrun job" in out
    runs = _runs_by_checkpoint(root / "out" / "aimed_index.sqlite")
    assert list(runs.values()) == [1, 1]  # the base model and the one checkpoint, each once


# ---- the shipped accelerate configs ---------------------------------------------------------
CONFIGS = Path(__file__).resolve().parents[2] / "docs" / "accelerate"


@pytest.mark.parametrize("name,kind", [("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"),
                                       ("deepspeed_zero3", "DEEPSPEED")])
def test_the_shipped_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"
    if kind == "FSDP":  # whole checkpoints on save, so each one loads and is scored as usual
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(_gpus() == 0, reason="FSDP needs CUDA GPUs; none here (run where a GPU is lent)")
def test_sft_under_fsdp_on_the_gpus(work):
    root, sft = work
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "fsdp.yaml"),
                "--num_processes", str(_gpus()), "--main_process_port", "{port}"]
    out, db = root / "sft-fsdp", root / "fsdp.sqlite"
    done = _train(sft, out, max(1, 8 // _gpus()), launcher, db)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _losses(out)[-1] < _losses(out)[0]
    _check_one_of_each(out, db, [3, 6])
