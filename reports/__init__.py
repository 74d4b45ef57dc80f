"""HTML and Markdown reports of the results index: the leaderboard, per-task scores with
their intervals, stage progression, per-category scores and a comparison of two runs
(``aimed-eval report``). Reads results only; never imports torch."""
