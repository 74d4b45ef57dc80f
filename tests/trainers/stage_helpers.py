"""Small helpers shared by the stage tests: tiny learnable data and one call to train."""

from __future__ import annotations

import json
from pathlib import Path

from aimed.trainers import load_stage_config, train_stage

# A tiny set the tiny model can learn in a few steps: the same answers, over and over.
PREFERENCE = [
    {"question": f"问题{i}：发热的病人应该怎么办？", "response_chosen": "多喝水，及时就医，遵医嘱用药。",
     "response_rejected": "不用管它。"}
    for i in range(8)
]
# The same two responses, preferred one way for one question and the other way for the other:
# a model that ignores the question ranks half of them wrong; learning needs the question.
PREFERENCE_BY_QUESTION = [
    {"question": q, "response_chosen": good, "response_rejected": bad}
    for q, good, bad in [("发热怎么办？", "多喝水。", "多运动。"), ("肥胖怎么办？", "多运动。", "多喝水。")] * 4
]
SFT = [{"instruction": f"第{i}题：高血压患者饮食应注意什么？", "input": "", "output": "低盐低脂，清淡饮食。"}
       for i in range(8)]
PT_TEXT = "\n".join(["高血压患者应当低盐饮食，规律服药，定期监测血压。"] * 8) + "\n"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def train(stage: str, model: Path, out: Path, **overrides):
    """Train ``stage`` from ``model`` into ``out`` with CPU-test defaults (no scoring unless asked)."""
    defaults = dict(max_steps=6, save_steps=100, logging_steps=1, per_device_train_batch_size=8,
                    max_length=64, only_cpu=True, eval_tasks=[], seed=0, lr_scheduler_type="constant")
    config = load_stage_config(stage, None, {"model": str(model), "output_dir": str(out), **defaults, **overrides})
    return train_stage(stage, config)
