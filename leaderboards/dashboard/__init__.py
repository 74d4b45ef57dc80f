"""The streamlit dashboard's parts: cached index queries (``data``), plotly figures
(``charts``), the sample search (``samples``) and one module a view (``*_view``).

``dashboard_app.py`` is the script streamlit runs; it only picks a view. Everything here
reads the index (opened read-only) and run folders; nothing writes, nothing imports torch.
"""
