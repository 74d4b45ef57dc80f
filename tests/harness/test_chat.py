"""The Python API and the terminal chat, driven through a pseudo-terminal."""

import sys

import pytest

from aimed.harness.inference import ChatModel, GenerationConfig, StopCutter

# The repetition penalty makes the random tiny model answer visibly differently once a
# reply is in its history, so the test can tell history kept from history cleared.
GREEDY = GenerationConfig(max_new_tokens=12, temperature=0, repetition_penalty=5.0)


def test_stop_cutter_never_shows_a_stop_string():
    cutter = StopCutter(("USER:",))
    shown = [cutter.feed(p) for p in ["你好", "，US", "E", "R: 下一轮"]]
    assert shown == ["你好", "，", "", ""] and cutter.flush() == ""
    cutter = StopCutter(("USER:",))
    assert cutter.feed("答案 U") == "答案 " and cutter.flush() == "U"


def test_python_api_in_three_lines(tiny_llama):
    bot = ChatModel.load(str(tiny_llama), template_name="vicuna", generation=GREEDY, only_cpu=True)
    first = bot.chat("什么是高血压？")
    assert first and first == bot.chat("什么是高血压？")  # greedy: the same reply twice
    assert "".join(bot.stream_chat("什么是高血压？")).strip() == first
    prompt = bot.prompt("再说一遍", [("什么是高血压？", first)])
    assert prompt.startswith("A chat between") and prompt.count("USER:") == 2 and prompt.endswith("ASSISTANT:")
    assert bot.chat("再说一遍", [("什么是高血压？", first)]) == bot.generate(prompt, bot.stops).strip()


def _reply(child) -> str:
    child.expect("Assistant: ")
    child.expect(r"\r\n\r\nUser: ")
    return child.before.strip()


def test_terminal_chat_two_turns_clear_quit(tiny_llama):
    pexpect = pytest.importorskip("pexpect")
    bot = ChatModel.load(str(tiny_llama), template_name="vicuna", generation=GREEDY, only_cpu=True)
    q1, q2 = "发热是什么", "怎么治疗"
    r1 = bot.chat(q1)
    r2 = bot.chat(q2, [(q1, r1)])  # the second turn sees the first
    r2_fresh = bot.chat(q2)  # after `clear` it does not
    assert r2 != r2_fresh, "the tiny model should answer differently with and without history"

    child = pexpect.spawn(sys.executable, ["-m", "aimed.harness.cli", "chat", "--model", str(tiny_llama),
                                           "--only_cpu", "--temperature", "0", "--max_new_tokens", "12",
                                           "--repetition_penalty", "5"],
                          encoding="utf-8", timeout=120, env={"OMP_NUM_THREADS": "1", **_env()})
    child.expect("Type 'clear'")
    child.expect("User: ")
    child.sendline(q1)
    assert _reply(child) == r1
    child.sendline(q2)
    assert _reply(child) == r2
    child.sendline("clear")
    child.expect(r"\(history cleared\)")
    child.expect("User: ")
    child.sendline(q2)
    assert _reply(child) == r2_fresh
    child.sendline("exit")
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_chat_bad_model_path_is_one_line(tmp_path, cli):
    code, _, err = cli("chat", "--model", tmp_path / "nope")
    assert code == 2 and "no such folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
