"""The streamlit chat demo (the original AiMed tools' ``web_demo.py``).

Started by ``aimed-eval webui --ui streamlit``, which checks the flags and then runs
``streamlit run streamlit_app.py -- FLAGS``; running that by hand works too. The model is
loaded once per server (``st.cache_resource``) and shared by every browser session; each
session keeps its own conversation in ``st.session_state``.
"""

from __future__ import annotations

import sys

import streamlit as st

from aimed.harness.errors import UserError
from aimed.harness.webui.common import TITLE, load_chat_model, parse_app_args, turns


@st.cache_resource(show_spinner="Loading the model…")
def chat_model(argv: tuple[str, ...]):
    # keyed by the command line: the same flags give the same model
    return load_chat_model(parse_app_args(list(argv)))


st.set_page_config(page_title=TITLE, page_icon="🩺")
st.title(TITLE)
try:
    flags = parse_app_args(sys.argv[1:])
    bot = chat_model(tuple(sys.argv[1:]))
except UserError as exc:  # a hub id that cannot be fetched, a damaged checkpoint, ...
    st.error(exc.message)
    st.stop()

messages = st.session_state.setdefault("messages", [])
with st.sidebar:
    adapters = " + ".join(bot.info.adapter_folders)
    st.caption(f"model: `{bot.info.model_folder}`" + (f" + `{adapters}`" if adapters else "")
               + f"  \ntemplate: `{bot.template_name}`")
    if st.button("清空对话 / Clear", key="clear"):
        messages.clear()  # this rerun then draws an empty conversation

for m in messages:
    with st.chat_message(m["role"]):
        st.markdown(m["content"])

if query := st.chat_input("请输入问题 / Ask a question"):
    history = turns(messages, flags.max_history)  # the turns before this question
    messages.append({"role": "user", "content": query})
    with st.chat_message("user"):
        st.markdown(query)
    with st.chat_message("assistant"):
        reply = st.write_stream(bot.stream_chat(query, history))  # "" when nothing came
    messages.append({"role": "assistant", "content": reply.strip()})
