"""Every named chat template renders the prompt format its model documents
(template_cases.yaml: one conversation, the expected string and its source), and the sft
stage can cut each rendering into prompt and reply segments."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aimed.harness.errors import UserError
from aimed.harness.templates import RAW_TEMPLATE, TEMPLATES, render_prompt, start_token_ids

TABLE = yaml.safe_load(Path(__file__).with_name("template_cases.yaml").read_text(encoding="utf-8"))
SYSTEM = TABLE["conversation"]["system"]
TURNS = [tuple(t) for t in TABLE["conversation"]["turns"]]
CASES = {case["name"]: case for case in TABLE["cases"]}


def test_every_named_template_has_a_case():
    assert sorted(CASES) == sorted(set(TEMPLATES.names()) - {RAW_TEMPLATE})


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=c["xfail"], strict=True))
                                  if c.get("xfail") else n for n, c in sorted(CASES.items())])
def test_template_renders_the_documented_format(name):
    case = CASES[name]
    (*history, (question, _)) = TURNS
    assert render_prompt(name, question, history=history, system=SYSTEM) == case["expected"]
    assert TEMPLATES.get(name).system == case["default_system"]
    if "jinja" in case:  # the expected string is what the model's own chat_template gives
        assert _render_jinja(case["jinja"], case.get("bos_token", "")) == case["expected"]


def _render_jinja(source: str, bos_token: str) -> str:
    """As transformers' apply_chat_template renders a chat_template."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [{"role": "system", "content": SYSTEM}]
    for user, assistant in TURNS:
        messages.append({"role": "user", "content": user})
        if assistant is not None:
            messages.append({"role": "assistant", "content": assistant})
    return env.from_string(source).render(messages=messages, add_generation_prompt=True, bos_token=bos_token)


def _stand_in_tokenizer(kind: str):
    """A tokenizer that starts an encoding as the model's does: ``llama`` (Llama-2's
    tokenizer.json: "▁" for spaces plus one before the text, a post-processor writing <s>
    first) or ``chatglm2`` (its build_inputs_with_special_tokens writes [gMASK] sop first)."""
    from tokenizers import Tokenizer, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    start = {"llama": ["<s>"], "chatglm2": ["[gMASK]", "sop"]}[kind]
    special = ["<unk>", "<s>", "</s>", "[gMASK]", "sop"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.train_from_iterator([SYSTEM, *[t for turn in TURNS for t in turn if t]] * 5,
                            trainers.BpeTrainer(vocab_size=200, special_tokens=special, show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single=" ".join(start + ["$A"]), special_tokens=[(t, special.index(t)) for t in start])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.mark.parametrize("name", sorted(CASES))
def test_prompt_starts_as_the_models_own_code_starts_it(name):
    """The tokens the model's own code puts before the prompt (FastChat's tokenizer(prompt),
    ChatGLM2's build_inputs), which the harness's encoding without special tokens lacks."""
    case = CASES[name]
    tok = _stand_in_tokenizer(case["start_tokenizer"])
    start = start_token_ids(name, tok)
    assert tok.convert_ids_to_tokens(start) == case["start"]
    (*history, (question, _)) = TURNS
    prompt = render_prompt(name, question, history=history, system=SYSTEM)
    plain = tok.encode(prompt, add_special_tokens=False)
    if case["start"]:  # with its start, the ids are the model's own encoding of the prompt
        assert start + plain == tok.encode(prompt)


def test_a_tokenizer_with_no_start_adds_none(tiny_qwen2):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen2)
    assert tok.encode("问") == tok.encode("问", add_special_tokens=False)
    assert start_token_ids("vicuna", tok) == [] and start_token_ids("chatglm2", tok) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_sft_cuts_a_round_into_prompt_and_reply(name):
    from aimed.trainers.sft_data import dialogue_segments

    segments = dialogue_segments([TURNS[0]], SYSTEM, name, None)
    prompt, reply = segments
    assert not prompt[1] and reply[1] and TURNS[0][1] in reply[0]
    assert prompt[0] == render_prompt(name, TURNS[0][0], system=SYSTEM)


def test_qwen3_multi_turn_sft_is_refused_in_one_line():
    """Qwen3's template writes the empty think block on the last reply only, so an earlier
    round renders differently once a later one follows: the sft stage says so."""
    from aimed.trainers.sft_data import dialogue_segments

    with pytest.raises(UserError, match="renders a conversation's turns inconsistently"):
        dialogue_segments([TURNS[0], (TURNS[1][0], "按医嘱服用退烧药。")], SYSTEM, "qwen3", None)


def test_unknown_template_names_the_known_ones():
    with pytest.raises(Exception) as err:
        render_prompt("chatglm9", "发热怎么办？")
    assert "chatglm3" in str(err.value)


@pytest.mark.parametrize("name", ["vicuna", "chatglm2", "chatml"])
def test_scoring_chat_and_training_start_prompts_alike(name, tiny_llama, tmp_path):
    """The hf backend (scoring), ChatModel (chat, serve) and the sft stage put the same start
    before a prompt: the template's (``<s>``/``[gMASK] sop``, none for chatml), and the
    checkpoint's fingerprint says so, so answers cached without it are never reused."""
    import shutil

    from aimed.harness.inference import ChatModel
    from aimed.harness.models.args import ModelArgs
    from aimed.harness.models.hf import HFBackend
    from aimed.trainers.sft_data import dialogue_segments, encode_segments

    kind = "chatglm2" if name == "chatglm2" else "llama"
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_llama, folder)
    tok = _stand_in_tokenizer(kind)
    tok.save_pretrained(folder)
    (*history, (question, _)) = TURNS
    prompt = render_prompt(name, question, history=history, system=SYSTEM)
    start = {"vicuna": ["<s>"], "chatglm2": ["[gMASK]", "sop"], "chatml": []}[name]
    backend = HFBackend(ModelArgs(model=str(folder), template_name=name))
    scored = backend.encode(prompt)
    assert backend.tokenizer.convert_ids_to_tokens(scored[:len(start)]) == start
    assert scored == start_token_ids(name, backend.tokenizer) + tok.encode(prompt, add_special_tokens=False)
    assert ChatModel(None, backend.tokenizer, {}, template_name=name).encode_prompt(prompt) == scored
    ids, labels = encode_segments(dialogue_segments(TURNS[:1], SYSTEM, name, tok), tok, 512,
                                  start_token_ids(name, tok))
    assert tok.convert_ids_to_tokens(ids[:len(start)]) == start and labels[:len(start)] == [-100] * len(start)

    from aimed.harness.models.fingerprint import checkpoint_fingerprint

    def fingerprint(template):
        return checkpoint_fingerprint(str(folder), [], ModelArgs(model=str(folder), template_name=template),
                                      "float32", lambda p: "h")
    marked = {"vicuna": True, "chatglm2": True, "chatml": False}[name]
    from aimed.harness.models.fingerprint import combine

    unmarked = combine("h", f"template={name}", "dtype=float32", "resize=False")
    assert (fingerprint(name) != unmarked) == marked
