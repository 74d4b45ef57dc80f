"""HTML and Markdown renderers of runs, comparisons and leaderboards. Not built yet: see issue 3."""
