"""The streamlit dashboard: its views driven by streamlit's AppTest against a small
synthetic index (``sample_index.build``, real run folders and samples files), checked
against the queries and the comparison they show; ``aimed-eval dashboard``'s bad input;
and the real thing: the command started as a server, opened in headless Chromium, the
leaderboard rows found in the page and a screenshot saved to test-artifacts/.

The views and the browser run on both backends (``[sqlite]``, ``[postgresql]``): the sample
index is recorded into an SQLite file and into a PostgreSQL database, whose URL reaches the
dashboard in ``AIMED_DB`` only (never argv, where ``ps`` shows it), and its password is
never on the page."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from aimed.harness.compare import compare_runs
from aimed.leaderboards import query, sample_index
from aimed.leaderboards.dashboard import samples
from pg_server import PASSWORD, copy_index

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "leaderboards" / "dashboard_app.py"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def index(tmp_path_factory, index_backend, new_index) -> str:
    """The sample index on this module's backend: an SQLite file, or a PostgreSQL URL."""
    root = tmp_path_factory.mktemp("dashboard")
    return str(sample_index.build(new_index(index_backend), root / "runs", n_runs=16, n_tasks=4, seed=3))


@pytest.fixture
def app(index, monkeypatch):
    """The dashboard on ``index`` (AIMED_DB), optionally opened on a view (``?view=``)."""
    monkeypatch.setenv("AIMED_DB", str(index))

    def start(view: str = "") -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if view:
            at.query_params["view"] = view
        at.run()
        assert not at.exception, at.exception
        shown = [e.value for kind in ("caption", "markdown", "info", "error", "html") for e in at.get(kind)]
        assert not [t for t in shown if PASSWORD in t]  # the sidebar names the index, without the password
        assert f"index: {index.replace(f':{PASSWORD}@', ':***@')}" in shown
        return at

    return start


class _TableParser(HTMLParser):
    """The dashboard's HTML tables (``tables.show``) back as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.rows: list[list[str]] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.rows = self.tables.setdefault(dict(attrs).get("data-table", ""), [])
        elif tag == "tr" and self.rows is not None:
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "br" and self.cell is not None:
            self.cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table":
            self.rows = None

    def handle_data(self, text):
        if self.cell is not None:
            self.cell.append(text)


def table(at: AppTest, name: str) -> pd.DataFrame:
    """The page's table ``name`` (its ``data-table``), cells as the text shown."""
    parser = _TableParser()
    for block in at.html:
        if 'data-table="' in block.value:
            parser.feed(block.value)
    if name not in parser.tables:
        raise AssertionError(f"no table {name!r} on the page; tables: {list(parser.tables)}")
    head, *rows = parser.tables[name]
    return pd.DataFrame(rows, columns=head)


def num(text: str):
    return None if text == "" else float(text)


def board(index: Path, **filters) -> query.Leaderboard:
    db = query.open_index(index)
    try:
        return query.leaderboard(db, **filters)
    finally:
        db.close()


def test_leaderboard_shows_every_checkpoint_with_its_scores(app, index):
    expected = board(index)
    shown = table(app(), "leaderboard")
    assert list(shown["run id"]) == [r.run_id for r in expected.rows]
    assert list(shown["checkpoint"]) == [r.checkpoint for r in expected.rows]
    assert list(shown["best"] == "★") == [r.best_in_stage for r in expected.rows]
    assert sum(r.best_in_stage for r in expected.rows) >= 4  # four base models, several stages
    assert expected.headline == "medqa"  # the suite's score is the one headline number
    for row, (_, cells) in zip(expected.rows, shown.iterrows()):
        assert num(cells["medqa (suite score)"]) == pytest.approx(row.average, abs=5e-5)
        assert row.average == pytest.approx(row.scores["medqa"][0])
        value, _, metric = row.scores["cmexam"]
        assert num(cells[f"cmexam ({metric})"]) == pytest.approx(value, abs=5e-5)
        assert cells["date"] == query.date_text(row.date)  # the CLI table's date format
    # the suite's members by default, every subject with the toggle
    assert "cmmlu_medical (score)" in shown.columns and "cmmlu_anatomy (acc)" not in shown.columns
    at = app()
    at.toggle(key="lb_every").set_value(True).run()
    assert "cmmlu_anatomy (acc)" in table(at, "leaderboard").columns
    assert "4 base models" in at.caption[0].value


def test_filters_change_the_rows(app, index):
    at = app()
    everything = table(at, "leaderboard")
    at.sidebar.multiselect(key="f_base").set_value(["qwen2-7b"]).run()
    qwen = table(at, "leaderboard")
    assert 0 < len(qwen) < len(everything)
    assert set(qwen["base model"]) == {"qwen2-7b"}
    assert list(qwen["run id"]) == [r.run_id for r in board(index, base_models=["qwen2-7b"]).rows]

    at.sidebar.multiselect(key="f_stage").set_value(["sft"]).run()
    sft = table(at, "leaderboard")
    assert set(sft["stage"]) == {"sft"} and 0 < len(sft) < len(qwen)

    at.sidebar.multiselect(key="f_base").set_value([]).run()
    at.sidebar.multiselect(key="f_stage").set_value([]).run()
    at.sidebar.multiselect(key="f_tasks").set_value(["medterm"]).run()
    one_task = table(at, "leaderboard")
    assert [c for c in one_task.columns if "(" in c] == ["medterm (rougeL)"]
    # with one column, the average is that column
    assert list(one_task["average"]) == list(one_task["medterm (rougeL)"])


def test_drilldown_shows_the_checkpoints_categories(app, index):
    at = app("Checkpoint")
    row = max(board(index).rows, key=lambda r: r.average)  # the picker opens on the best checkpoint
    lineage = table(at, "lineage")
    assert dict(zip(lineage["field"], lineage["value"]))["fingerprint"] == row.fingerprint
    db = query.open_index(index)
    cats = [c for c in query.category_scores(db, row.run_id) if c["task"] == at.selectbox(key="dd_task").value]
    db.close()
    metric = at.selectbox(key="dd_metric").value
    column = sorted({c["column"] for c in cats})[0]
    shown = table(at, f"categories-{column}")
    want = {c["category"]: c["value"] for c in cats if c["column"] == column and c["metric"] == metric}
    assert {k: num(v) for k, v in zip(shown["category"], shown["value"])} == pytest.approx(want, abs=5e-5)
    assert len(want) >= 3


def test_training_figures_are_named_for_what_they_are():
    """PPO's KL is the k1 estimate (can be negative) and says so; a reward model's figures
    say training pairs or held-out pairs."""
    from aimed.leaderboards.dashboard.drilldown_view import training_frame

    ppo = training_frame({"train_metrics": {"steps": 8, "first_kl": 0.01, "last_kl": -0.03, "first_reward": 0.2,
                                            "last_reward": 0.5}, "config": {"kl_estimator": "k1"}})
    shown = dict(zip(ppo["figure"], ppo["value"]))
    assert shown["KL estimate to the reference (k1: Σ log π/π_ref per response, can be negative)"] == "0.01 → -0.03"
    assert shown["reward-model score of sampled responses"] == "0.2 → 0.5" and shown["steps"] == "8"
    k3 = training_frame({"train_metrics": {"first_kl": 0.01, "last_kl": 0.02}, "config": {"kl_estimator": "k3"}})
    assert list(k3["figure"]) == ["KL estimate to the reference (k3, never negative)"]
    rm = training_frame({"train_metrics": {"pairs": 40, "held_out_pairs": 8, "train_margin_before": 0.0,
                                           "train_margin_after": 0.6, "train_pair_accuracy_before": 0.5,
                                           "train_pair_accuracy_after": 0.9},
                         "eval": {"pair_accuracy": 0.75, "margin": 0.4}})
    shown = dict(zip(rm["figure"], rm["value"]))
    assert shown == {"training-pair margin, r(chosen) − r(rejected)": "0 → 0.6", "training-pair accuracy": "0.5 → 0.9",
                     "training pairs": "40", "held-out pairs": "8", "held-out pair accuracy": "0.75",
                     "held-out margin, r(chosen) − r(rejected)": "0.4"}
    assert len(training_frame({})) == 0


def test_every_view_picks_checkpoints_with_the_one_picker():
    views = REPO / "leaderboards" / "dashboard"
    for name in ("drilldown_view.py", "compare_view.py", "samples_view.py"):
        text = (views / name).read_text(encoding="utf-8")
        assert "pick_checkpoint(" in text and "checkpoint_label" not in text, name


def test_compare_shows_deltas_with_intervals_and_flips(app, index):
    rows = board(index).rows
    a, b = 0, max(i for i, r in enumerate(rows) if r.base_model == rows[0].base_model)  # base vs its last
    expected = compare_runs(Path(rows[a].run_dir), Path(rows[b].run_dir)).to_dict()
    assert expected["flips"], "the sample index should give this pair flipped items"
    at = app("Compare")
    # by default the report's pair: the best checkpoint (B) against its parent (A)
    from aimed.reports.comparison import default_pair

    with query.open_index(index) as conn:
        (run_a, run_b), _ = default_pair(conn, board(index))
    assert (rows[at.selectbox(key="cmp_a").value].run_dir, rows[at.selectbox(key="cmp_b").value].run_dir) == \
        (str(run_a), str(run_b))
    assert rows[at.selectbox(key="cmp_b").value].average == max(r.average for r in rows)
    at.selectbox(key="cmp_a").set_value(a).run()
    at.selectbox(key="cmp_b").set_value(b).run()
    assert not at.exception, at.exception
    deltas = table(at, "deltas")
    assert len(deltas) == len(expected["metrics"])
    for m, (_, shown) in zip(expected["metrics"], deltas.iterrows()):
        assert (shown["task"], shown["metric"]) == (m["task"], m["metric"])
        assert num(shown["delta (B-A)"]) == pytest.approx(m["delta"], abs=5e-5)
        low, high = (num(x) for x in shown["95% interval"].strip("[]").split(", "))
        assert (low, high) == pytest.approx((m["ci_low"], m["ci_high"]), abs=5e-5)
        assert low <= num(shown["delta (B-A)"]) <= high
        assert shown["significant"] == ("yes" if m["significant"] else "no")
    flips = table(at, "flips")
    assert len(flips) == min(len(expected["flips"]), 100)
    assert list(flips.columns) == ["task", "id", "question", "target", "A output", "B output", "A score", "B score"]
    first = expected["flips"][0]
    assert (flips.iloc[0]["A output"], flips.iloc[0]["B output"]) == (first["a_output"], first["b_output"])
    assert flips.iloc[0]["A score"] != flips.iloc[0]["B score"]
    # the flip search narrows to one item by its id
    at.text_input(key="cmp_flip_query").input(str(first["id"])).run()
    assert list(table(at, "flips")["id"]) == [str(first["id"])]


def test_sample_search_finds_an_item(app, index):
    rows = board(index).rows
    row = max(rows, key=lambda r: r.average)  # the browser opens on the best checkpoint
    task = samples.sample_tasks(Path(row.run_dir))[0]
    lines = [json.loads(x) for x in samples.samples_file(Path(row.run_dir), task).read_text("utf-8").splitlines()]
    wanted = lines[len(lines) // 2]
    at = app("Samples")
    assert rows[at.selectbox(key="smp_checkpoint").value].run_id == row.run_id
    assert at.selectbox(key="smp_task").value == task
    assert len(table(at, "samples")) == len(lines)
    at.text_input(key="smp_query").input(wanted["doc"]["id"]).run()
    hits = table(at, "samples")
    assert list(hits["id"]) == [wanted["doc"]["id"]]
    assert hits.iloc[0]["target"] == wanted["target"]
    assert num(hits.iloc[0]["score"]) == pytest.approx(wanted[row.scores[task][2]], abs=5e-5)
    # a word from nowhere finds nothing; the score filter keeps only the wrong items
    at.text_input(key="smp_query").input("no-such-text-anywhere").run()
    assert len(table(at, "samples")) == 0
    at.text_input(key="smp_query").input("").run()
    at.selectbox(key="smp_scored").set_value("wrong").run()
    wrong = [x for x in lines if x[row.scores[task][2]] < 1]
    assert len(table(at, "samples")) == len(wrong) > 0


def test_items_of_a_real_run_layout(tmp_path):
    """Lines as ``aimed-eval run`` writes them: a loglikelihood MCQ item and a generated
    one whose BLEU entry is a list of corpus statistics, not an item score."""
    mcq = {"doc_id": 0, "doc": {"id": "cmexam-2", "question": "成人安静时正常心率", "options": {"A": "40", "B": "60～100"},
                                "answer": ["B"], "target": "", "categories": {"Difficulty level": "1"}},
           "target": "B", "mode": "loglikelihood", "arguments": {"context": "…", "continuations": ["A", "B"]},
           "resps": [[-7.2, 1, False], [-7.1, 1, False]], "filtered_resps": ["B"], "acc": 1.0, "set_f1": None}
    gen = {"doc_id": 1, "doc": {"id": "term-1", "question": "发热", "options": {}, "answer": [], "target": "体温升高",
                                "categories": {}},
           "target": "体温升高", "mode": "generate", "arguments": {}, "resps": "体温\n升高了", "filtered_resps": "体温\n升高了",
           "rouge1": 0.5, "rougeL": 0.25, "bleu4": [3, 0, 0, 0, 89, 88, 87, 86, 89, 32], "char_f1": 0.6}
    path = tmp_path / "samples_x.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in (mcq, gen)) + "\n", encoding="utf-8")
    assert samples.sample_tasks(tmp_path) == ["x"]
    first, second = samples.load_items(path, "rougeL")
    assert (first["output"], first["score"], first["metric"]) == ("B", 1.0, "acc")  # no rougeL: its first metric
    assert first["question"] == "成人安静时正常心率\nA. 40\nB. 60～100"
    assert (second["output"], second["score"], second["metric"]) == ("体温\n升高了", 0.25, "rougeL")
    assert samples.item_scores(gen) == {"rouge1": 0.5, "rougeL": 0.25, "char_f1": 0.6}
    both = [first, second]
    assert samples.search_items(both, "60～100") == [first]           # an option's text
    assert samples.search_items(both, "升高 TERM-1") == [second]      # every word, any case
    assert samples.search_items(both, "", "wrong") == [second]
    assert samples.search_items(both, "", "right") == [first]


def test_progression_chart_plots_each_base_model_stage_after_stage(app, index):
    at = app("Progression")
    task = at.selectbox(key="prog_task").value
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    db = query.open_index(index)
    points = [p for p in query.progression(db) if p["task"] == task]
    db.close()
    assert {t["name"] for t in spec["data"]} == {p["base_model"] for p in points}
    plotted = sorted(y for t in spec["data"] for y in t["y"])
    assert plotted == pytest.approx(sorted(p["value"] for p in points))
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    stages = [s for _, s in sorted({(p["stage_index"], p["stage"]) for p in points})]
    assert titles == stages and len(stages) >= 3  # one panel a stage, in training order
    assert stages == sorted(stages, key=["base", "pt", "sft", "rm", "ppo", "dpo"].index)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_missing_index_is_one_error_on_the_page(backend, monkeypatch, tmp_path, request):
    if backend == "sqlite":
        missing, named = str(tmp_path / "none.sqlite"), "none.sqlite"
    else:  # a database the server does not have
        missing = request.getfixturevalue("pg_server").url("aimed_none")
        named = missing.replace(f":{PASSWORD}@", ":***@")
    monkeypatch.setenv("AIMED_DB", missing)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and len(at.error) == 1 and named in at.error[0].value
    assert PASSWORD not in at.error[0].value


def test_an_empty_index_says_how_to_fill_it(index_db, monkeypatch):
    from aimed.harness.index import connect

    connect(index_db).close()
    monkeypatch.setenv("AIMED_DB", index_db)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and "aimed-eval import" in at.info[0].value
    assert PASSWORD not in at.info[0].value


# SQLite only: a missing file and a file that is not a database (PostgreSQL's bad URLs, down
# servers and foreign databases: test_index_postgres).


def test_command_refuses_bad_input_before_starting(cli, tmp_path, monkeypatch):
    code, out, err = cli("dashboard", "--db", tmp_path / "missing.sqlite")
    assert code == 2 and "missing.sqlite" in err and len(err.strip().splitlines()) == 1
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    code, out, err = cli("dashboard", "--db", junk)
    assert code == 2 and "junk.sqlite" in err and len(err.strip().splitlines()) == 1

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    code, out, err = cli("dashboard", "--db", junk)
    assert code == 2 and "pip install 'aimed-eval[dashboard]'" in err


def test_command_binds_loopback_headless_without_usage_stats():
    from aimed.leaderboards.dashboard_cmd import streamlit_command

    cmd = streamlit_command(Path("/x/index.sqlite"), "127.0.0.1", 8600)
    flags = dict(zip(cmd, cmd[1:]))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8600"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert cmd[-3:] == ["--", "--db", "/x/index.sqlite"]


# --- the real server in a real browser -------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited ({proc.returncode}): {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not answer at {url} within {seconds} s")


def screenshot(page, test: str, name: str) -> Path:
    """A full-page png under test-artifacts/<test>/ (copied to $AIMED_SCREENSHOTS/<test>/ when set)."""
    folder = REPO / "test-artifacts" / test
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("AIMED_SCREENSHOTS"):
        import shutil

        copy = Path(os.environ["AIMED_SCREENSHOTS"]) / test
        copy.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy / path.name)
    assert path.stat().st_size > 10_000
    return path


def test_dashboard_in_headless_chromium(index):
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
        pytest.fail(reason) if os.environ.get("CI") == "true" else pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    rows = board(index).rows
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("aimed-eval")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("AIMED_DB", None)
    pg = index.startswith("postgresql")
    if pg:  # the URL in the environment, never on a command line
        argv, env["AIMED_DB"] = [str(exe), "dashboard", "--port", str(port)], index
    else:
        argv = [str(exe), "dashboard", "--db", index, "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    test = "test_dashboard_in_headless_chromium" + ("_postgresql" if pg else "")
    width = 1400
    try:
        wait_healthy(proc, url)
        if pg:  # the server's command line (what ps shows) holds no password
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
            assert "streamlit" in cmdline and PASSWORD not in cmdline and "postgresql" not in cmdline
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                page = browser.new_page(viewport={"width": width, "height": 1000})
                page.goto(url)
                board_rows = page.locator('table[data-table="leaderboard"] tbody tr')
                board_rows.nth(len(rows) - 1).wait_for(timeout=60_000)
                assert board_rows.count() == len(rows)
                text = page.locator('table[data-table="leaderboard"]').inner_text()
                assert rows[0].checkpoint in text
                assert page.get_by_text(rows[0].base_model).first.is_visible()
                assert PASSWORD not in page.content()
                if pg:  # the sidebar names the PostgreSQL index, without its password
                    assert page.get_by_text(f"index: {index.replace(f':{PASSWORD}@', ':***@')}").is_visible()
                # the run-id column is inside the table's container, whole (it wraps, never clipped)
                cell = board_rows.nth(0).locator("td").last
                box = cell.bounding_box()
                frame = page.locator("div.aimed-scroll").first.bounding_box()
                assert box["x"] + box["width"] <= frame["x"] + frame["width"] + 1 <= width, (box, frame)
                assert cell.inner_text().replace("\n", "") == rows[0].run_id
                screenshot(page, test, "leaderboard")

                page.goto(url + "/?view=Compare")
                flips = page.locator('table[data-table="flips"]')
                flips.wait_for(timeout=60_000)
                flips.scroll_into_view_if_needed()
                heads = {h: flips.locator("th", has_text=h).first.bounding_box()
                         for h in ("question", "A output", "B output")}
                q, a, b = heads["question"], heads["A output"], heads["B output"]
                frame = page.locator("div.aimed-scroll", has=flips).bounding_box()
                assert q["x"] < a["x"] < b["x"] and b["x"] + b["width"] <= frame["x"] + frame["width"] + 1, heads
                assert a["width"] >= 150 and b["width"] >= 150, heads
                significant = page.locator('table[data-table="deltas"] tbody tr td:last-child').all_inner_texts()
                assert significant and set(significant) <= {"yes", "no"}
                assert page.get_by_text("B is the best checkpoint and A its parent").first.is_visible()
                screenshot(page, test, "compare")

                page.goto(url + "/?view=Samples")
                page.locator('table[data-table="samples"]').wait_for(timeout=60_000)
                best = max(rows, key=lambda r: r.average)
                from playwright.sync_api import expect

                picker = page.get_by_role("combobox", name="checkpoint")
                expect(picker).to_have_value(f"{best.checkpoint} · {best.base_model}/{best.stage} step {best.step} · "
                                             f"{best.run_id}", timeout=30_000)
                screenshot(page, test, "samples")

                page.goto(url + "/?view=Progression")
                page.locator(".js-plotly-plot .scatterlayer").first.wait_for(timeout=60_000)
                screenshot(page, test, "progression")
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with pytest.raises(OSError):  # stopped: nothing listens on the port any more
        urllib.request.urlopen(url + "/_stcore/health", timeout=2)
    assert PASSWORD not in proc.stdout.read()  # nor in what the command printed


@pytest.fixture(scope="module")
def circular_run(tiny_llama, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, SQLite index) of a real run with --circular and --contamination_data."""
    from aimed.harness.cli import main

    root = tmp_path_factory.mktemp("robust")
    data = root / "sft.jsonl"
    data.write_text(json.dumps({"instruction": "成人正常心率是多少？", "input": "",
                                "output": "成人安静状态下正常心率为每分钟60～100次，超过100次为心动过速。"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    db = root / "index.sqlite"
    assert main(["run", "--model", str(tiny_llama), "--tasks", "demo_mcq", "--circular", "--contamination_data",
                 str(data), "--output_dir", str(root / "run"), "--db", str(db), "--no_cache", "--quiet"]) == 0
    return root / "run", db


def test_drilldown_shows_robustness_of_a_circular_checked_run(circular_run, index_db, monkeypatch):
    """A real run with --circular and --contamination_data: the drill-down's Robustness table
    shows its main metric beside the circular and clean-subset values, as the index has them
    (the run is scored once; its rows copied into each backend)."""
    run_dir, db = circular_run
    monkeypatch.setenv("AIMED_DB", copy_index(db, index_db))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["view"] = "Checkpoint"
    at.run()
    assert not at.exception, at.exception
    shown = table(at, "robustness")
    res = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["results"]["demo_mcq"]
    row = dict(zip(shown.columns, shown.iloc[0]))
    assert row["task"] == "demo_mcq" and row["metric"] == "acc"
    assert row["circular"].startswith(f"{res['acc_circular,none']:.4f} [")
    assert row["order-sensitive"].startswith(f"{res['order_sensitivity,none']:.4f} [")
    assert row["clean"].startswith(f"{res['acc_clean,none']:.4f} [")
    assert row["contaminated"].startswith(f"{res['contaminated,none']:.4f} [")
