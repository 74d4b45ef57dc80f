"""The plain-text table of a run's scores that ``run`` and ``score`` print. A predict_only
task has no score: its row says so, with its item count, where a number would be."""

from __future__ import annotations


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "—"


def print_summary(results: dict) -> None:
    rows = []
    groups = set(results.get("groups", {}))
    n_samples = results.get("n-samples", {})
    scored = results.get("aimed", {}).get("scored", {})
    predicted = results.get("aimed", {}).get("predict_only", {})
    for task, block in results["results"].items():
        if task in predicted:
            rows.append((task, "(predict-only)", "—", "", str(predicted[task].get("items", ""))))
            continue
        for key, value in block.items():
            if "," not in key or "_stderr" in key:
                continue
            metric = key.split(",")[0]
            se = block.get(f"{metric}_stderr,none")
            n = scored.get(task, {}).get(metric, n_samples.get(task, {}).get("effective", ""))
            rows.append((("* " if task in groups else "") + task, metric, _fmt(value),
                         "± " + _fmt(se) if isinstance(se, (int, float)) else "", str(n)))
    head = ("task", "metric", "value", "stderr", "n")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if groups:
        print("(* a group: size-weighted means; score = mean of its members' main metrics)")
    if predicted:
        print("(predict-only: the publisher keeps the answers; predicted, not scored, and left out of "
              "group averages)")
