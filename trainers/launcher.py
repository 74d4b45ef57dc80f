"""A pipeline stage run as a distributed job: ``launcher:`` in a pipeline config.

```yaml
launcher: {command: torchrun, args: [--nproc_per_node=8]}                 # every stage
stage_launchers:                                                            # or per stage
  sft: {command: accelerate, args: [--config_file, docs/accelerate/fsdp.yaml]}
```

The pipeline writes the stage's config (every key it set: parent, output folder, eval
settings) to a YAML file beside the stage folder and runs ``torchrun ARGS -m
aimed.harness.cli train --stage S --config FILE`` (``accelerate launch ARGS ...`` alike),
its output in ``<stage>.launch.log``. It waits for the job and reads its result from the
stage marker the job's main process wrote last: a job that fails (a process that dies,
bad input, a full disk) leaves no marker, so nothing of it is recorded as done, and the
pipeline says why in one line and redoes the stage on the next run. Multi-node: give the
launcher's rendezvous arguments (``--nnodes``, ``--rdzv_endpoint`` / ``--machine_rank``,
``--main_process_ip``); the other nodes run the same command themselves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from aimed.harness.errors import UserError

from .base import StageResult

_MODULES = {"torchrun": "torch.distributed.run", "accelerate": "accelerate.commands.launch"}


class Launcher(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    command: Literal["torchrun", "accelerate"]
    args: list[str] = []


def command_line(launcher: Launcher, stage: str, config_file: Path) -> list[str]:
    """The job's command: the launcher, by module, from this Python (its own venv)."""
    return [sys.executable, "-m", _MODULES[launcher.command], *launcher.args,
            "-m", "aimed.harness.cli", "train", "--stage", stage, "--config", str(config_file)]


def _reason(log: str, code: int) -> str:
    """What the job's log says went wrong, in a few words."""
    ours = re.findall(r"aimed-eval: error: (.+)", log)
    if ours:
        return ours[-1].strip()
    signal = re.search(r"exitcode\s*:\s*-(\d+).*?\((SIG\w+)\)", log)
    if signal:
        return f"a process was killed ({signal.group(2)})"
    last = [x for x in log.splitlines() if x.strip()][-1:] or [""]
    return f"exit code {code}: {last[0].strip()[:200]}"


def launch_stage(stage: str, keys: dict, launcher: Launcher, out: Path) -> StageResult:
    """Train ``stage`` with ``keys`` as a job of ``launcher``; its result, or a UserError."""
    from .checkpoints import read_stage_result

    job = out.parent / f"{stage}.launch.yaml"
    log = out.parent / f"{stage}.launch.log"
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(yaml.safe_dump({k: v for k, v in keys.items() if v is not None}, allow_unicode=True),
                   encoding="utf-8")
    with log.open("w", encoding="utf-8") as sink:
        code = subprocess.run(command_line(launcher, stage, job), stdout=sink, stderr=subprocess.STDOUT).returncode
    text = log.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        raise UserError(f"{stage}: the {launcher.command} job failed ({_reason(text, code)}); nothing of it is "
                        f"recorded as done, the next run redoes the stage; log: {log}")
    try:
        return read_stage_result(stage, out)
    except FileNotFoundError:
        raise UserError(f"{stage}: the {launcher.command} job ended without writing its stage marker in {out}; "
                        f"log: {log}") from None
