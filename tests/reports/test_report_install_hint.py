"""``report`` without plotly: the one-line install hint and exit 2, as ``dashboard`` gives,
before anything is read or written; Markdown needs no plotly."""

import importlib.util


def test_html_report_without_plotly_is_the_install_hint(cli, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    code, out, err = cli("report", "--db", tmp_path / "missing.sqlite", "--out", tmp_path / "r.html")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("aimed-eval: error: the HTML report needs plotly") and "pip install 'aimed-eval[report]'" in err
    assert "--format markdown" in err and not (tmp_path / "r.html").exists()
    code, out, err = cli("report", "--db", tmp_path / "missing.sqlite", "--format", "markdown", "--out", tmp_path / "r.md")
    assert code == 2 and "missing.sqlite" in err  # past the plotly check: the index is what is wrong here
