"""The two web demos end to end: ``aimed-eval webui`` serves the tiny model, a real headless
Chromium types a question, and the streamed answer on the page must be the one
``ChatModel.chat`` gives in-process (greedy). Screenshots go to test-artifacts/."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from aimed.harness.inference import ChatModel, GenerationConfig

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; never `playwright install`
QUESTION = "什么是高血压？"
FLAGS = ("--only_cpu", "--temperature", "0", "--max_new_tokens", "8")

# Where each ui puts the question box and the answers (their own test ids).
INPUT = {"streamlit": '[data-testid="stChatInputTextArea"]', "gradio": "textarea"}
ANSWER = {"streamlit": '[data-testid="stChatMessageContent"]', "gradio": '[data-testid="bot"]'}
CLEAR = {"streamlit": "button:has-text('Clear')", "gradio": "button[aria-label='Clear']"}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def expected(tiny_llama) -> str:
    bot = ChatModel.load(str(tiny_llama), template_name="vicuna", only_cpu=True,
                         generation=GenerationConfig(max_new_tokens=8, temperature=0))
    return bot.chat(QUESTION)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def webui(ui: str, model: Path, log: Path):
    """The server as a user starts it; stopped as a user stops it (SIGTERM) on the way out."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "aimed.harness.cli", "webui", "--ui", ui,
                                 "--model", str(model), *FLAGS, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no server on port {port}:\n{log.read_text()}"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"the {ui} server did not stop on SIGTERM:\n{log.read_text()}")
    assert code == 0, f"the {ui} server stopped with {code}:\n{log.read_text()}"


def wait_for_text(locator, text: str, timeout: float = 30) -> str:
    """The locator's text once it equals ``text`` (answers stream in), or the last seen."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if locator.count():
            seen = locator.inner_text()
            if seen == text:
                break
        time.sleep(0.2)
    return seen


@pytest.mark.parametrize("ui", ["streamlit", "gradio"])
def test_webui_answers_in_the_browser(ui, browser, tiny_llama, expected, tmp_path):
    assert expected, "the tiny model should say something"
    with webui(ui, tiny_llama, tmp_path / f"{ui}.log") as url:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(url)
        box = page.locator(INPUT[ui]).first
        box.wait_for(timeout=40_000)  # streamlit loads the model on the first visit
        box.fill(QUESTION)
        box.press("Enter")
        # streamlit shows the question and the answer in the same kind of box: the last one
        answer = page.locator(ANSWER[ui]).last
        assert wait_for_text(answer, expected) == expected
        assert page.get_by_text(QUESTION, exact=True).count() >= 1  # the question stays as history
        page.locator(INPUT[ui]).first.wait_for(timeout=10_000)  # gradio hides it until the answer is done
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"webui_{ui}.png"), full_page=True)
        page.locator(CLEAR[ui]).first.click()  # starts over: no answer left on the page
        page.locator(ANSWER[ui]).first.wait_for(state="detached", timeout=10_000)
        page.close()


def test_webui_bad_model_folder_is_one_line_before_any_server(tmp_path, cli):
    code, out, err = cli("webui", "--ui", "gradio", "--model", tmp_path / "nope", "--port", free_port())
    assert code == 2 and "no such folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "webui (" not in out


def test_webui_busy_port_is_one_line(tiny_llama, cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        code, _, err = cli("webui", "--model", tiny_llama, "--port", s.getsockname()[1])
    assert code == 2 and "pick another --port" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("ui", ["streamlit", "gradio"])
def test_webui_missing_package_names_the_extra(ui, tiny_llama, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, ui, None)  # what Python sees when the package is absent
    code, _, err = cli("webui", "--ui", ui, "--model", tiny_llama)
    assert code == 2 and "pip install 'aimed-eval[webui]'" in err and len(err.strip().splitlines()) == 1


def test_history_turns_from_either_ui():
    from aimed.harness.webui.common import turns

    streamlit = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": " a1 "},
                 {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    gradio6 = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in streamlit]
    assert turns(streamlit, 10) == turns(gradio6, 10) == [("q1", "a1"), ("q2", "a2")]
    assert turns(gradio6, 1) == [("q2", "a2")] and turns(gradio6, 0) == []
    assert turns(streamlit[:3], 10) == [("q1", "a1")]  # a question not yet answered is no turn


def test_flags_reach_the_streamlit_app_unchanged(tiny_llama):
    from aimed.harness.cli import build_parser
    from aimed.harness.webui.common import app_argv, parse_app_args

    ns = build_parser().parse_args(["webui", "--base_model", str(tiny_llama), "--only_cpu", "--resize_emb",
                                    "--template_name", "alpaca", "--temperature", "0.3", "--gpus", "0,1",
                                    "--max_history", "3", "--system_prompt", "你是医生", "--port", "9000"])
    back = vars(parse_app_args(app_argv(ns)))
    assert back == {k: v for k, v in vars(ns).items() if k in back} and back["template_name"] == "alpaca"
