"""The web demos (the original AiMed tools' ``web_demo.py`` and ``gradio_demo.py``).

``aimed-eval webui --ui streamlit|gradio`` starts one; ``common`` holds what both share.
Nothing here imports streamlit or gradio at import time: each is an optional extra.
"""
