"""A backend added from the test folder through the ``aimed.backends`` entry points, run
through the CLI like a built-in one."""

from __future__ import annotations

import csv
import json
import os
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from aimed.harness.models import backend as registry


@pytest.fixture
def plugin(monkeypatch):
    found = registry.entry_points
    ep = EntryPoint(name="first-option", value="backend_plugin_example:KIND", group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*found(group=group), ep])


def _share_answering(letter: str) -> float:
    import aimed.tasks

    rows = list(csv.DictReader((Path(aimed.tasks.__file__).parent / "demo_data" / "demo_mcq.csv")
                               .open(encoding="utf-8-sig")))
    return sum(r["Answer"].strip() == letter for r in rows) / len(rows)


@pytest.mark.parametrize("mode", ["loglikelihood", "cloze", "generate"])
@pytest.mark.parametrize("letter", ["A", "B"])
def test_a_plugin_backend_scores_through_the_cli(plugin, cli, tmp_path, mode, letter):
    assert "first-option" in registry.backend_names()
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--backend", "first-option", "--model", f"prefer-{letter}", "--tasks", "demo_mcq",
                            "--mode", mode, "--output_dir", out, "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    expected = _share_answering(letter) if mode != "cloze" else _share_answering("A")  # cloze: option texts, first wins
    assert res["results"]["demo_mcq"]["acc,none"] == pytest.approx(expected)
    assert res["config"]["model"] == "first-option" and res["aimed"]["model"]["folder"] == "nowhere"
    assert res["aimed"]["options"]["mode"] == mode


def test_flags_a_plugin_does_not_take_are_refused(plugin, cli, tmp_path):
    code, _, err = cli("run", "--backend", "first-option", "--model", "prefer-A", "--tasks", "demo_mcq",
                       "--base_url", "http://127.0.0.1:9/v1", "--output_dir", tmp_path / "run", "--no_index")
    assert code == 2 and "--base_url is for --backend openai" in err
    assert not (tmp_path / "run").exists()


def test_a_broken_plugin_is_one_line_when_chosen(monkeypatch, cli, tmp_path):
    found = registry.entry_points
    ep = EntryPoint(name="broken", value="no_such_module_here:KIND", group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*found(group=group), ep])
    code, _, err = cli("run", "--backend", "broken", "--model", "m", "--tasks", "demo_mcq",
                       "--output_dir", tmp_path / "run", "--no_index")
    assert code == 2 and "--backend broken: its module no_such_module_here:KIND cannot be imported" in err
    code, _, err = cli("run", "--model", "m", "--backend", "hf", "--api_key", "k", "--tasks", "demo_mcq",
                       "--output_dir", tmp_path / "run", "--no_index")
    assert code == 2 and "--api_key is for --backend openai" in err  # the broken one is not asked
