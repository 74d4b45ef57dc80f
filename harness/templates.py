"""Chat templates, in one registry: the named ones of the original AiMed tools and of the
base models teams start from, ``raw`` (no template: base and continued-pretraining
checkpoints) and ``tokenizer`` (the tokenizer's own ``chat_template``).

A template renders a conversation (``[(user, assistant), ...]`` with the last assistant
turn left open) into the prompt string the model continues. aimed-eval encodes prompts
without special tokens, so what a model's own chat template writes as text before the
first turn (GLM's ``[gMASK]sop``, Llama 3's ``<|begin_of_text|>``) is the template's
``prefix``. Each named template is checked against the format its model documents, as
data: ``tests/harness/template_cases.yaml`` names the source of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import UserError
from .registry import Registry


@dataclass(frozen=True)
class Template:
    name: str
    system: str = ""
    prefix: str = ""  # starts every conversation, with or without a system prompt
    system_fmt: str = "{system}"  # how the system prompt is written when not empty
    user_fmt: str = "{content}"  # one user turn
    assistant_fmt: str = "{content}"  # one finished assistant turn
    assistant_open: str = ""  # what opens the assistant's reply
    reply_open: str = ""  # opens the last reply only, after assistant_open (Qwen3's empty think block)
    sep: str = ""  # between rounds
    stop: tuple[str, ...] = ()  # strings that end a reply (besides EOS)
    # The model's own chat code encodes the prompt with its tokenizer's special tokens, which
    # put a start before the text (FastChat: Llama's <s>; ChatGLM2's build_inputs: [gMASK] sop)
    tokenizer_start: bool = False

    def render(self, history: list[tuple[str, Optional[str]]], system: Optional[str] = None) -> str:
        system = self.system if system is None else system
        parts = [self.prefix] + ([self.system_fmt.format(system=system)] if system else [])
        for i, (user, assistant) in enumerate(history):
            turn = self.user_fmt.format(content=user, round=i + 1) + self.assistant_open
            if i == len(history) - 1:
                turn += self.reply_open
            if assistant is not None:
                turn += self.assistant_fmt.format(content=assistant) + self.sep
            parts.append(turn)
        return "".join(parts)


TOKENIZER_TEMPLATE = "tokenizer"
RAW_TEMPLATE = "raw"  # the scoring default: base and continued-pretraining checkpoints know no template
CHAT_TEMPLATE = "vicuna"  # the chat and training default, as the original AiMed tools had it

TEMPLATES: Registry[Template] = Registry("chat template")

_VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                  "The assistant gives helpful, detailed, and polite answers to the user's questions.")
_ALPACA_SYSTEM = ("Below is an instruction that describes a task. "
                  "Write a response that appropriately completes the request.")

_CHATML = dict(system_fmt="<|im_start|>system\n{system}<|im_end|>\n",
               user_fmt="<|im_start|>user\n{content}<|im_end|>\n", assistant_open="<|im_start|>assistant\n",
               assistant_fmt="{content}<|im_end|>\n", stop=("<|im_end|>", "<|im_start|>"))

# The source of each format is named in tests/harness/template_cases.yaml.
for _t in (
    Template(RAW_TEMPLATE),
    # FastChat's vicuna_v1.1: the open prompt ends "ASSISTANT:" and a finished reply is
    # " {content}</s>", so the space before a reply belongs to the reply, as the model writes it
    Template("vicuna", system=_VICUNA_SYSTEM, system_fmt="{system} ", user_fmt="USER: {content} ",
             assistant_open="ASSISTANT:", assistant_fmt=" {content}</s>", stop=("USER:",), tokenizer_start=True),
    Template("alpaca", system=_ALPACA_SYSTEM, system_fmt="{system}\n\n",
             user_fmt="### Instruction:\n{content}\n\n", assistant_open="### Response:",
             sep="\n\n", stop=("### Instruction:",), tokenizer_start=True),
    Template("chatglm2", user_fmt="[Round {round}]\n\n问：{content}\n\n", assistant_open="答：",
             sep="\n\n", stop=("[Round",), tokenizer_start=True),
    # ChatGLM3 and GLM-4: the text of their tokenizer_config.json chat_template
    Template("chatglm3", prefix="[gMASK]sop", system_fmt="<|system|>\n {system}",
             user_fmt="<|user|>\n {content}", assistant_open="<|assistant|>", assistant_fmt="\n {content}",
             stop=("<|user|>", "<|observation|>")),
    Template("glm4", prefix="[gMASK]<sop>", system_fmt="<|system|>\n{system}", user_fmt="<|user|>\n{content}",
             assistant_open="<|assistant|>", assistant_fmt="\n{content}",
             stop=("<|user|>", "<|observation|>", "<|endoftext|>")),
    Template("baichuan", user_fmt="<reserved_102>{content}", assistant_open="<reserved_103>",
             stop=("<reserved_102>",)),
    Template("baichuan2", user_fmt="<reserved_106>{content}", assistant_open="<reserved_107>",
             stop=("<reserved_106>",)),
    Template("llama2-zh", system="You are a helpful assistant. 你是一个乐于助人的助手。", prefix="[INST] ",
             system_fmt="<<SYS>>\n{system}\n<</SYS>>\n\n", user_fmt="{content} [/INST]",
             assistant_fmt=" {content}</s>", sep="<s>[INST] ", stop=("[INST]",), tokenizer_start=True),
    Template("llama3", prefix="<|begin_of_text|>",
             system_fmt="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
             user_fmt="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
             assistant_open="<|start_header_id|>assistant<|end_header_id|>\n\n", assistant_fmt="{content}<|eot_id|>",
             stop=("<|eot_id|>",)),
    Template("chatml", system="You are a helpful assistant.", **_CHATML),
    # Qwen3 without thinking (its chat_template with enable_thinking=False): the reply opens
    # with an empty think block; earlier replies are written without one
    Template("qwen3", reply_open="<think>\n\n</think>\n\n", **_CHATML),
):
    TEMPLATES.add(_t.name, _t)
TEMPLATES.add("qwen", TEMPLATES.get("chatml"))



def template_names() -> list[str]:
    return TEMPLATES.names() + [TOKENIZER_TEMPLATE]


def render_prompt(template_name: str, user: str, tokenizer=None,
                  history: Optional[list[tuple[str, str]]] = None, system: Optional[str] = None) -> str:
    """The prompt that asks ``user`` (after ``history``) and opens the assistant's reply.

    ``system`` replaces the template's default system prompt ("" drops it)."""
    turns: list[tuple[str, Optional[str]]] = list(history or []) + [(user, None)]
    if template_name == TOKENIZER_TEMPLATE:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UserError("--template_name tokenizer: this tokenizer has no chat_template; "
                            f"name one of {', '.join(TEMPLATES.names())}")
        messages = [{"role": "system", "content": system}] if system else []
        for u, a in turns:
            messages.append({"role": "user", "content": u})
            if a is not None:
                messages.append({"role": "assistant", "content": a})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return TEMPLATES.get(template_name).render(turns, system)


def template_stops(template_name: str) -> tuple[str, ...]:
    if template_name == TOKENIZER_TEMPLATE:
        return ()
    return TEMPLATES.get(template_name).stop


def template_start(template_name: str) -> bool:
    """Whether prompts of this template begin with the tokenizer's start tokens."""
    return template_name != TOKENIZER_TEMPLATE and template_name in TEMPLATES.names() and \
        TEMPLATES.get(template_name).tokenizer_start


def start_token_ids(template_name: str, tokenizer) -> list[int]:
    """The token ids the model's own chat code puts before a prompt of this template, which a
    prompt encoded without special tokens lacks: what ``tokenizer`` adds in front of a text
    when it encodes with special tokens (Llama's BOS for vicuna, alpaca and llama2-zh;
    ChatGLM2's [gMASK] sop), for templates whose model code encodes so; [] for the others
    (their start, if any, is text in the template) and for a tokenizer that adds none."""
    if not template_start(template_name):
        return []
    probe = "问"
    plain = tokenizer.encode(probe, add_special_tokens=False)
    full = tokenizer.encode(probe)
    for k in range(len(full) - len(plain) + 1):
        if full[k: k + len(plain)] == plain:
            return full[:k]
    return []
