"""The gradio chat demo (the original AiMed tools' ``gradio_demo.py``).

``build_demo`` wraps a loaded ``ChatModel`` in a ``gr.ChatInterface``: the answer streams
into the chat, the conversation is the history of the next question, and the chat's clear
button (the bin in its corner) starts over. ``aimed-eval webui --ui gradio`` loads the
model, builds the demo and serves it.
"""

from __future__ import annotations

import os

# Gradio phones home (usage analytics, a version check against api.gradio.app) unless told
# not to; a demo of a private checkpoint, often on an offline machine, must not.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402  (after the environment above)

from .common import TITLE, turns  # noqa: E402


def build_demo(bot, max_history: int = 10) -> gr.ChatInterface:
    def respond(message: str, history: list[dict]):
        # gradio shows each yielded value as the whole answer so far
        reply = ""
        for piece in bot.stream_chat(message, turns(history, max_history)):
            reply += piece
            yield reply.lstrip()
        yield reply.strip()  # the same text ChatModel.chat returns

    model = bot.info.model_folder or ""
    adapters = " + ".join(bot.info.adapter_folders)
    return gr.ChatInterface(
        respond,
        title=TITLE,
        description=f"model: `{model}`" + (f" + `{adapters}`" if adapters else "")
                    + f"; template: `{bot.template_name}`",
        # no "share" button: it would post the conversation to Hugging Face
        chatbot=gr.Chatbot(label="AiMed", height=480, buttons=["copy", "copy_all"]),
        textbox=gr.Textbox(placeholder="请输入问题 / Ask a question", submit_btn=True, stop_btn=True),
        analytics_enabled=False,
        concurrency_limit=1,  # one model: answers take turns (ChatModel locks anyway)
    )
