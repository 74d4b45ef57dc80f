"""The Python API: what ``aimed.harness`` exports, and the README's example on a tiny model."""

from __future__ import annotations

import subprocess
import sys

import pytest

import aimed.harness as api


def test_every_exported_name_resolves_without_loading_torch():
    code = ("import sys, aimed.harness as h; names = [getattr(h, n) for n in h.__all__]; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # leaderboards and reports import the harness: it must stay light
    assert {"evaluate", "load_model", "ChatModel", "compare", "gate", "Backend", "CheckpointInfo"} <= set(api.__all__)
    with pytest.raises(AttributeError):
        api.no_such_name  # noqa: B018


def test_submodules_do_not_shadow_the_functions_of_their_names():
    import aimed.harness.compare  # noqa: F401  (a submodule import rebinds the package attribute)
    import aimed.harness.evaluate  # noqa: F401
    import aimed.harness.gate  # noqa: F401
    from aimed.harness import compare, evaluate, gate

    assert callable(evaluate) and callable(compare) and callable(gate)


def test_the_readme_example_on_a_tiny_model(tiny_llama, tmp_path):
    from aimed.harness import ModelArgs, RunOptions, compare, evaluate, gate

    raw = evaluate(ModelArgs(model=str(tiny_llama), only_cpu=True), ["demo_mcq"], RunOptions(limit=8, progress=False),
                   output_dir=tmp_path / "raw", use_cache=False)
    chat = evaluate(ModelArgs(model=str(tiny_llama), only_cpu=True, template_name="vicuna"), ["demo_mcq"],
                    RunOptions(limit=8, progress=False), output_dir=tmp_path / "chat", use_cache=False)
    # the template given in ModelArgs is the one applied and recorded (it is its one source)
    assert chat.results["aimed"]["options"]["template_name"] == "vicuna"
    assert chat.results["config"]["apply_chat_template"] and not raw.results["config"]["apply_chat_template"]
    assert "USER:" in chat.outcomes[0].records[0]["arguments"]["context"]
    assert raw.results["aimed"]["model"]["fingerprint"] != chat.results["aimed"]["model"]["fingerprint"]
    comparison = compare(raw.run_dir, chat.run_dir)  # A then B: delta is B - A
    row = comparison.row("demo_mcq", "acc")
    assert row.n == 8
    assert row.delta == pytest.approx(chat.results["results"]["demo_mcq"]["acc,none"]
                                      - raw.results["results"]["demo_mcq"]["acc,none"])
    verdict = gate(chat.run_dir, raw.run_dir)
    assert verdict.checks and isinstance(verdict.passed, bool)


def test_a_command_loads_its_own_module_alone(tmp_path):
    """`aimed-eval leaderboard` (the team's most frequent command) starts without the task
    schema, the scoring engine or torch: only the module of the command named is imported."""
    code = ("import sys; from aimed.harness.cli import main; code = main(['leaderboard', '--db', sys.argv[1]]); "
            "print(code, *sorted(m for m in ('aimed.harness.taskspec', 'aimed.harness.evaluate', 'torch', "
            "'aimed.harness.cli.run_cmd') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none.sqlite")], capture_output=True, text=True)
    assert out.stdout.split() == ["2"], out.stdout + out.stderr  # no index there: exit 2, and nothing else loaded
    assert "no results index there" in out.stderr
