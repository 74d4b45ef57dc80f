"""Results-index queries, leaderboard tables and the streamlit dashboard. Not built yet: see issue 3."""
