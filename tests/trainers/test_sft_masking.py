"""The sft stage's prompt/reply boundary with a SentencePiece-style tokenizer (Llama-2's
tokenizer.json: a normalizer that writes "▁" for every space and one more before the
text). vicuna's reply " {content}</s>" opens with FastChat's space; encoded alone it would
get the dummy "▁" too ("▁▁多…"), which the model, continuing "ASSISTANT:", never writes."""

from __future__ import annotations

import pytest

from aimed.trainers.sft_data import dialogue_segments, encode_segments

TURNS = [("发热怎么办？", "多喝水，注意休息。"), ("高血压患者饮食应注意什么？", "低盐低脂，清淡饮食。")]


def _llama_style_tokenizer(corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse()])
    tok.train_from_iterator(corpus * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                             show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _trained(ids, labels, tok):
    return tok.convert_ids_to_tokens([i for i, lab in zip(ids, labels) if lab != -100])


# Without "USER: ASSISTANT:" in the corpus, no token crosses a prompt/reply boundary; with
# it the vocabulary learns ":▁", which the whole text merges across "ASSISTANT:" + " 多".
@pytest.mark.parametrize("corpus", [["高血压患者饮食应注意什么？ 低盐低脂，清淡饮食。", "发热怎么办？ 多喝水，注意休息。"],
                                    ["高血压患者饮食应注意什么？ 低盐低脂，清淡饮食。", "发热怎么办？ 多喝水，注意休息。",
                                     "USER: ASSISTANT:"]])
def test_vicuna_reply_has_one_space_and_only_replies_are_trained(corpus):
    tok = _llama_style_tokenizer(corpus)
    segments = dialogue_segments(TURNS, "", "vicuna", tok)
    assert [text for text, _ in segments][1::2] == [" 多喝水，注意休息。</s>", " 低盐低脂，清淡饮食。</s>"]
    assert tok.convert_ids_to_tokens(tok(segments[1][0], add_special_tokens=False)["input_ids"])[:2] == ["▁", "▁"]
    ids, labels = encode_segments(segments, tok, 512)
    trained = _trained(ids, labels, tok)
    assert trained.count("</s>") == 2 and "".join(trained) == "▁多喝水，注意休息。</s>▁低盐低脂，清淡饮食。</s>"
    # the first prompt is the tokens the harness gives the prompt alone
    first = tok(segments[0][0], add_special_tokens=False)["input_ids"]
    assert ids[: len(first)] == first and all(lab == -100 for lab in labels[: len(first)])
    if len(corpus) == 2:  # no merge across a boundary: the tokens of the whole conversation
        assert ids == tok("".join(text for text, _ in segments), add_special_tokens=False)["input_ids"]
