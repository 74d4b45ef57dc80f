"""argparse ``type=`` checkers for flags whose values have a shape: a wrong value is a
usage error (one line, exit 2) at parse time, never a value recorded and then ignored or
a traceback deep in torch or a socket call."""

from __future__ import annotations

import argparse
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlparse

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
GPU_IDS = re.compile(r"\d+(,\d+)*")
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def device(text: str) -> str:
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: give auto, cpu, cuda, cuda:N or mps")
    return text


def gpu_ids(text: str) -> str:
    if not GPU_IDS.fullmatch(text.replace(" ", "")):
        raise argparse.ArgumentTypeError(f"{text!r}: give GPU numbers separated by commas, e.g. 0,1")
    return text.replace(" ", "")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 0 or more") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: give a whole number, 0 or more")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0: give a whole number, 1 or more")
    return value


def port(text: str) -> int:
    value = non_negative_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: give a port number from 1 to 65535")
    return value


def host(text: str) -> str:
    """An IP address or a host name; ``256.1.1.1`` (digits and dots, not an address) is refused."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", text) or not HOSTNAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: not an IP address or host name; e.g. 127.0.0.1 or 0.0.0.0")
    return text


def http_url(text: str) -> str:
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(f"{text!r}: give the server's http(s) URL, e.g. http://127.0.0.1:8000/v1")
    return text


URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:/")


def without_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``: never echoed."""
    return re.sub(r"(:/+[^/:@]*:)[^@/]*@", r"\1***@", url)  # also a URL whose // a path collapsed


PG_URL = re.compile(r"^postgres(ql)?://")


def url_refusal(text: str) -> str | None:
    """The message for a results-index URL of a database the index does not live in (it is
    an SQLite file or a PostgreSQL database), or None."""
    if not URL_SCHEME.match(text) or PG_URL.match(text):
        return None
    return (f"{without_password(text)}: the results index is an SQLite file or a PostgreSQL database; give "
            "the file's path (e.g. aimed_runs/aimed_index.sqlite) or postgresql://USER@HOST:5432/DB")


def db_path(text: str):
    """A results index: an SQLite file's path, or a PostgreSQL URL (kept as text)."""
    refusal = url_refusal(text)
    if refusal:
        raise argparse.ArgumentTypeError(refusal)
    return text if PG_URL.match(text) else Path(text)
