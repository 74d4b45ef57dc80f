"""Training-data contamination: which benchmark items appear in training files.

Exam questions leak into continued-pretraining and SFT data. This scans training files
(text, JSON/JSONL records, CSV/TSV, gzip-compressed or not) for each item's character
n-grams (or jieba-word n-grams) after NFKC and dropping punctuation and spaces, and
reports per item the share of its n-grams found and the longest matched span::

    from aimed.harness.contamination import scan_tasks

    report = scan_tasks(["medqa"], ["data/sft.jsonl", "data/pretrain.txt.gz"])
    report.counts()["cmexam"].flagged, report.flagged_ids("cmexam")
    report.write_jsonl("contamination.jsonl")

The method, its sources and the measurements behind the defaults: docs/contamination.md.
numpy is imported only when a scan runs.
"""

from .corpus import TrainingFile, check_files
from .items import Item, items_from_tasks
from .normalise import normalise
from .report import ContaminationReport, ItemOverlap, TaskCounts
from .scan import DEFAULT_N, DEFAULT_THRESHOLD, MIN_N, check_settings, scan_items, scan_tasks

__all__ = ["ContaminationReport", "DEFAULT_N", "DEFAULT_THRESHOLD", "Item", "ItemOverlap", "MIN_N",
           "TaskCounts", "TrainingFile", "check_files", "check_settings", "items_from_tasks", "normalise",
           "scan_items", "scan_tasks"]
