"""A stage's progress bar, and lines written while it is on screen land on lines of their
own (above the bar), never glued onto it."""

import sys

from aimed.trainers.progress import stage_bar, write


def test_a_line_written_during_a_bar_starts_a_line_of_its_own(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stderr", sys.stdout)  # one terminal: the bar and the lines share it
    with stage_bar("ppo", 4, unit="iter") as bar:
        bar.update()
        bar.set_postfix(reward="0.318")
        write("[ppo] checkpoint-2: demo_mcq/acc=0.8333")
        bar.update(3)
    shown = capsys.readouterr().out
    before, line, after = shown.partition("[ppo] checkpoint-2: demo_mcq/acc=0.8333")
    assert line and before.endswith("\r") and after.startswith("\n")  # the bar was cleared first
    assert before.rstrip("\r ").endswith("reward=0.318]")  # ... and it had been drawn
    assert "ppo: 100%|" in after and "| 4/4 [" in after and "reward=0.318]" in after


def test_write_with_no_bar_is_a_plain_line(capsys):
    write("[sft] checkpoint-30: demo_mcq/acc=0.2500")
    write("aimed-eval: warning: scoring failed", err=True)
    out, err = capsys.readouterr()
    assert out == "[sft] checkpoint-30: demo_mcq/acc=0.2500\n" and err == "aimed-eval: warning: scoring failed\n"
