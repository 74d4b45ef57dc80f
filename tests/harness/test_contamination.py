"""The contamination scanner (harness/contamination) on real data: CMExam validation items
planted into copies of the shared training files, the untouched files, every file format,
the word unit, the reference against the vectorised scanner, and memory."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import tracemalloc
import unicodedata
from pathlib import Path

import pytest

from aimed.harness.contamination import (DEFAULT_N, DEFAULT_THRESHOLD, ContaminationReport, Item, check_files,
                                         items_from_tasks, normalise, scan_items)
from aimed.harness.contamination.normalise import fold_codepoint
from aimed.harness.contamination.plant import KINDS, plant, render
from aimed.harness.errors import UserError

PER_KIND = 200
REQUIRED_RECALL = {"verbatim": 0.95, "punctuation": 0.95, "reordered": 0.95}
# One character in twenty replaced leaves ~0.95^8 = 66 % of an item's 8-grams on average,
# so about half the items stay over the 0.7 threshold (0.56 measured on 500 an item kind,
# docs/contamination.md); this floor guards against a regression, not a target.
SUBSTITUTED_FLOOR = 0.45
# The only CMExam item the untouched training files flag at the defaults. Not a leak: its
# question 可增强心肌收缩力的药物 is a stock phrase that Huatuo's instructions use, and its
# options (辛伐他汀, 多巴酚丁胺, ...) are all shorter than an n-gram, so the question's
# 8-grams are all it has (3 of 4 found).
KNOWN_CLEAN_FLAGS = {"cmexam-30182"}


@pytest.fixture(scope="module")
def training_files(data_dir) -> list[Path]:
    return sorted(p for p in (data_dir / "train").glob("*/*") if p.is_file())


@pytest.fixture(scope="module")
def cmexam(data_dir) -> list[Item]:
    return items_from_tasks(["cmexam"])


@pytest.fixture(scope="module")
def planted(cmexam, training_files, tmp_path_factory):
    """(planted copies of the training files, item index -> kind)."""
    rng = random.Random(7)
    chosen = rng.sample(range(len(cmexam)), PER_KIND * len(KINDS))
    kind_of = {i: KINDS[k // PER_KIND] for k, i in enumerate(chosen)}
    files = plant(training_files, [(cmexam[i], kind_of[i]) for i in chosen], tmp_path_factory.mktemp("planted"))
    return files, kind_of


@pytest.fixture(scope="module")
def planted_report(cmexam, planted) -> ContaminationReport:
    return scan_items(cmexam, planted[0])


def test_recall_of_planted_items_per_kind(planted_report, planted):
    _, kind_of = planted
    recall = {}
    for kind in KINDS:
        idx = [i for i, k in kind_of.items() if k == kind]
        recall[kind] = sum(planted_report.items[i].flagged for i in idx) / len(idx)
    print(f"recall at n={DEFAULT_N['char']}, threshold={DEFAULT_THRESHOLD}: {recall}")
    for kind, floor in REQUIRED_RECALL.items():
        assert recall[kind] >= floor, (kind, recall)
    assert recall["substituted"] >= SUBSTITUTED_FLOOR, recall
    verbatim = [planted_report.items[i] for i, k in kind_of.items() if k == "verbatim"]
    assert all(o.share == 1.0 for o in verbatim)  # every n-gram of a verbatim leak is found
    assert all(o.longest >= DEFAULT_N["char"] for o in verbatim)


def test_untouched_training_files_flag_no_cmexam_item_but_the_known_one(cmexam, training_files):
    report = scan_items(cmexam, training_files)
    flagged = report.flagged_ids("cmexam")
    assert flagged <= KNOWN_CLEAN_FLAGS, sorted(flagged)
    assert len(flagged) <= 1
    assert report.counts()["cmexam"].items == len(cmexam) == 6810


def test_reference_and_fast_scanner_agree_on_real_data(cmexam, planted, planted_report):
    """The textbook matcher (a set of n-gram strings, a window slid over each segment) and
    the vectorised one give the same share, span and flag on every item."""
    reference = scan_items(cmexam, planted[0], engine="reference")
    assert [(o.share, o.longest, o.flagged) for o in reference.items] == \
           [(o.share, o.longest, o.flagged) for o in planted_report.items]
    assert sum(o.share > 0 for o in reference.items) > 1000  # not agreeing on zeros alone


def test_reference_and_fast_agree_on_the_suite_and_another_n(data_dir, training_files):
    """medterm's definitions were mined from MedicalGPT's textbook, as fever.txt was: true
    overlaps, found alike by both scanners; n=13 as well as the default."""
    items = items_from_tasks(["medterm", "cmmlu_medical"])
    for n in (DEFAULT_N["char"], 13):
        fast = scan_items(items, training_files, n=n)
        reference = scan_items(items, training_files, n=n, engine="reference")
        assert [(o.share, o.longest) for o in fast.items] == [(o.share, o.longest) for o in reference.items]
    assert fast.counts()["medterm"].flagged > 0


def test_folding_a_code_point_alone_is_nfkc_in_context():
    """The vectorised scanner folds code points one at a time; wherever ``fold_codepoint``
    says that is safe, it must equal ``normalise`` of the whole string."""
    rng = random.Random(0)
    pool = ([chr(c) for c in range(0x20, 0x250)] + [chr(c) for c in range(0x300, 0x370)]
            + [chr(c) for c in range(0x2000, 0x2200)] + [chr(c) for c in range(0x2460, 0x24A0)]
            + [chr(c) for c in range(0x3000, 0x3100)] + [chr(c) for c in range(0x3300, 0x3400)]
            + [chr(c) for c in range(0x4E00, 0x4F00)] + [chr(c) for c in range(0xAC00, 0xAC40)]
            + [chr(c) for c in range(0x1100, 0x1180)] + [chr(c) for c in range(0xFF00, 0xFFF0)]
            + ["℃", "Ⅱ", "㎎", "①", "\U0001F600", "\U00020000", "\U0002F800", "\x00", "\ufeff", "\u200b"])
    checked = 0
    for _ in range(20000):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 10)))
        folds = [fold_codepoint(ord(c)) for c in s]
        if all(f is not None for f in folds):
            assert "".join(folds) == normalise(s), repr(s)
            checked += 1
    assert checked > 5000
    assert normalise("Ⅱ型糖尿病，血钾>5.5 mmol/L（37℃） ＤＮＡ") == "ii型糖尿病血钾55mmoll37cdna"
    assert unicodedata.is_normalized("NFKC", normalise("Ａ，ｂ①"))


def test_tricky_text_scans_alike_in_both_scanners(tmp_path):
    """Segments the vectorised scanner cannot fold a character at a time (combining marks,
    Hangul, NUL, characters beyond the BMP, lone surrogates) take the slow way, and the
    result is the reference's."""
    base = "传染病是指由病原微生物感染人体后产生的有传染性的疾病"
    tricky = [base, "é" + base, base.replace("病", "病\u0301", 1), "가" + base[:12], base[:10] + "\x00" + base[10:],
              "\U00020000" + base, base[:6] + "Ⅱ㎎" + base[6:], base[:9] + "\ud800" + base[9:], "ＡＢＣ" + base]
    items = [Item("t", str(i), text) for i, text in enumerate(tricky)]
    data = tmp_path / "tricky.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in tricky[1:] + [base[3:20]]), encoding="utf-8")
    fast = scan_items(items, [data], n=5)
    reference = scan_items(items, [data], n=5, engine="reference")
    assert [(o.share, o.longest) for o in fast.items] == [(o.share, o.longest) for o in reference.items]
    assert all(o.share > 0 for o in fast.items)


def _formats(text: str, other: str) -> dict[str, bytes]:
    """``text`` (a leak) in every format the scanner reads, beside ``other`` (clean text)."""
    out = {
        "pt.txt": f"{other}\n{text.replace(chr(10), ' ')}\n".encode(),
        "notes.md": f"# 笔记\n\n{text.replace(chr(10), ' ')}\n".encode(),
        "pt.text": f"{other}\r\n{text.replace(chr(10), ' ')}\r\n".encode(),  # CRLF
        "sft.jsonl": "\ufeff".encode() + (json.dumps({"instruction": text, "input": "", "output": "答案：C"},
                                                      ensure_ascii=False) + "\n").encode(),
        "ascii.jsonl": (json.dumps({"text": other}) + "\n" + json.dumps({"text": text}) + "\n").encode(),  # \\u escapes
        "rm.json": (json.dumps({"question": other, "response_chosen": text, "response_rejected": "否"},
                               ensure_ascii=False) + "\n").encode(),
        "dpo.json": json.dumps([{"conversations": [{"from": "human", "value": other}], "chosen": text,
                                 "rejected": "不知道"}] * 3, ensure_ascii=False, indent=2).encode(),
        "sharegpt.jsonl": (json.dumps({"conversations": [{"from": "human", "value": text},
                                                         {"from": "gpt", "value": other}]}, ensure_ascii=False)
                           + "\n").encode(),
        "gbk.txt": f"{other}\n{text.replace(chr(10), ' ')}\n".encode("gb18030"),
    }
    buf = io.StringIO()
    csv.writer(buf).writerows([["id", "text"], ["1", other], ["2", text]])  # a quoted cell over lines
    out["table.csv"] = buf.getvalue().encode()
    out["table.tsv"] = f"1\t{other}\n2\t{text.replace(chr(10), ' ')}\n".encode()
    for name in list(out):
        out[name + ".gz"] = gzip.compress(out[name])
    return out


def test_every_format_and_gzip(tmp_path, cmexam):
    item, clean = cmexam[0], cmexam[1]
    leak = render(item, "verbatim", random.Random(0))
    files = _formats(leak, "医学文本：" + clean.question)
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        report = scan_items([item, clean], [tmp_path / name])
        assert [o.flagged for o in report.items] == [True, False], name
    checked = check_files([tmp_path / "gbk.txt", tmp_path / "sft.jsonl.gz"])
    assert [tf.encoding for tf in checked] == ["gb18030", "utf-8"] and checked[1].gzipped


def test_a_large_json_array_is_read_an_element_at_a_time(tmp_path, cmexam):
    """A pretty-printed array bigger than a block: elements span block boundaries."""
    from aimed.harness.contamination.corpus import BLOCK_BYTES, read_chunks

    records = [{"instruction": s.question, "input": "", "options": [{"label": k, "text": v} for k, v in s.options]}
               for s in cmexam] * 2
    path = tmp_path / "big.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    assert path.stat().st_size > 2 * BLOCK_BYTES
    segments = [seg for chunk in read_chunks(check_files([path])[0]) for seg in chunk]
    assert segments == [v for r in records for v in (r["instruction"], "", *(x for o in r["options"] for x in o.values()))]


def test_a_file_that_stops_being_utf8_is_refused_naming_where(tmp_path, cmexam):
    path = tmp_path / "mixed.txt"
    path.write_bytes(("医学文本一行\n" * 200000).encode() + "后来的内容\n".encode("gb18030"))
    with pytest.raises(UserError, match=r"mixed\.txt: not UTF-8 text after byte \d+"):
        scan_items(cmexam[:5], [path])


def test_word_unit(tmp_path, cmexam, training_files):
    """jieba words: planted items are found, and both scanners agree."""
    rng = random.Random(3)
    chosen = rng.sample(cmexam, 60)
    leaks = [(item, kind) for item, kind in zip(chosen, ["verbatim", "reordered"] * 30)]
    fever = [p for p in training_files if p.name == "fever.txt"]
    files = plant(fever, leaks, tmp_path)
    fast = scan_items(chosen, files, unit="word")
    reference = scan_items(chosen, files, unit="word", engine="reference")
    assert fast.n == DEFAULT_N["word"] and fast.unit == "word"
    assert [(o.share, o.longest) for o in fast.items] == [(o.share, o.longest) for o in reference.items]
    assert sum(o.flagged for o in fast.items) / len(chosen) >= 0.9


def test_memory_is_bounded_by_a_chunk_not_by_the_corpus(tmp_path, cmexam, training_files):
    """Peak allocation (tracemalloc: Python objects and numpy arrays) while scanning 4 MB
    and 12 MB of text: the same, a few chunks' worth, whatever the corpus size."""
    fever = next(p for p in training_files if p.name == "fever.txt").read_text(encoding="utf-8")
    items = cmexam[:300]
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text(fever * 12, encoding="utf-8")
    large.write_text(fever * 36, encoding="utf-8")
    scan_items(items, [small])  # tables built once a process: not the scan's
    peaks = []
    for path in (small, large):
        tracemalloc.start()
        scan_items(items, [path])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    print("tracemalloc peaks (4 MB, 12 MB of text):", peaks)
    assert large.stat().st_size > 2.5 * small.stat().st_size
    assert peaks[1] < peaks[0] * 1.2 + (1 << 20), peaks
    assert peaks[1] < 48 << 20, peaks  # two 2 MB bit maps, a chunk's arrays and strings


def test_the_command_writes_its_report_and_replaces_only_its_own(cli, tmp_path, planted, cmexam):
    out = tmp_path / "contamination.jsonl"
    code, stdout, err = cli("contamination", "--tasks", "cmexam", "--data", *planted[0], "--out", out, "--quiet")
    assert code == 0, err
    assert "cmexam" in stdout and "most overlapping flagged items" in stdout
    report = ContaminationReport.read_jsonl(out)
    assert len(report.items) == len(cmexam) and report.n == DEFAULT_N["char"]
    assert report.counts()["cmexam"].flagged >= 0.95 * 3 * PER_KIND
    header = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert header["aimed_eval"] == "contamination" and header["counts"]["cmexam"]["items"] == len(cmexam)
    code, _, err = cli("contamination", "--tasks", "cmexam", "--data", planted[0][0], "--out", out, "--quiet")
    assert code == 0, err  # its own file: replaced
    assert len(ContaminationReport.read_jsonl(out).flagged_ids("cmexam")) < report.counts()["cmexam"].flagged
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
