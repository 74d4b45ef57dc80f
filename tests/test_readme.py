"""CI runs the README's Quick start test command verbatim, so the two cannot drift apart."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Quick start\n(.*?)^## ", text, re.S | re.M).group(1)
    return [line for code in re.findall(r"```bash\n(.*?)```", block, re.S)
            for line in code.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim():
    commands = quick_start_commands()
    assert len(commands) == 2, commands  # one runs the demo, one sets up and runs the tests
    test_command = next(c for c in commands if "pytest" in c)
    assert "torch==2.13.0" in test_command
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert test_command in ci
