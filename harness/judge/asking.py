"""Put many prompts to a judge: cached, concurrent, resumable, with bounded retries.

Every judgement is committed to the response cache (under the judge's fingerprint, keyed
by the rubric and the prompt) as soon as it is read, from the main thread, so a killed run
loses only the judgements in flight and a rerun asks only for the rest: an item is never
asked again once its judgement is in the cache. An unreadable judgement is asked again
with the format restated, up to ``parse_retries`` times; the outputs of every attempt are
kept, so a better parser can re-read them later without asking.
"""

from __future__ import annotations

import time
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from tqdm.auto import tqdm

from ..cache import request_key
from ..errors import UserError
from .client import JudgeClient
from .rubric import Rubric


@dataclass
class Judged:
    reading: Any  # what the reader made of the output; None: unreadable after the retries
    outputs: list[str]  # the judge's output of every attempt, the last one read


@dataclass
class JudgeStats:
    """What judging cost in one run: recorded in results.json (``aimed.judge``)."""

    items: int = 0
    asked: int = 0  # items sent to the judge in this run (the rest came from the cache)
    cached: int = 0
    invalid: int = 0
    retries: int = 0  # extra requests after unreadable judgements
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, other: "JudgeStats") -> None:
        for name in ("items", "asked", "cached", "invalid", "retries", "prompt_tokens", "completion_tokens",
                     "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies += other.latencies

    def to_dict(self) -> dict:
        lat = sorted(self.latencies)
        return {"items": self.items, "asked": self.asked, "cached": self.cached, "invalid": self.invalid,
                "retries": self.retries, "requests": len(lat), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 3),
                "latency_mean_s": round(sum(lat) / len(lat), 4) if lat else None,
                "latency_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 4) if lat else None,
                "items_per_second": round(self.asked / self.seconds, 3) if self.asked and self.seconds else None}


# reads the judge's output for the prompt of that index: (index, output) -> reading or None
Reader = Callable[[int, str], Any]


def _reading(i: int, outputs: list[str], read: Reader) -> Any:
    for text in outputs:
        if (found := read(i, text)) is not None:
            return found
    return None


def ask_all(client: JudgeClient, cache, rubric: Rubric, prompts: list[str], read: Reader, *,
            progress: bool = True, desc: str = "judge") -> tuple[list[Judged], JudgeStats]:
    """A :class:`Judged` for every prompt, in order, and what it cost."""
    started = time.perf_counter()
    retries = client.config.parse_retries
    keys = [request_key("judge", [rubric.sha, p]) for p in prompts]
    stored: dict[str, Any] = cache.get_many(client.fingerprint, keys)
    prior = {i: (stored.get(k) or {}).get("outputs", []) for i, k in enumerate(keys)}
    done: dict[int, Judged] = {}
    for i, outputs in prior.items():
        if outputs and ((r := _reading(i, outputs, read)) is not None or len(outputs) > retries):
            done[i] = Judged(r, outputs)
    stats = JudgeStats(items=len(prompts), cached=len(done))
    todo = [i for i in range(len(prompts)) if i not in done]

    def attempt(i: int) -> tuple[int, list[str], list]:
        outputs, replies = list(prior[i]), []
        while True:
            reply = client.ask(prompts[i] if not outputs else rubric.retry(prompts[i]))
            replies.append(reply)
            outputs.append(reply.text)
            if read(i, reply.text) is not None or len(outputs) > retries:
                return i, outputs, replies

    bar = tqdm(total=len(prompts), initial=len(done), desc=desc, unit="item", dynamic_ncols=True,
               disable=not progress or not todo)
    failure: Optional[UserError] = None
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        futures = [pool.submit(attempt, i) for i in todo]
        for future in as_completed(futures):
            try:
                i, outputs, replies = future.result()
            except CancelledError:
                continue
            except UserError as exc:  # the endpoint gave up: keep what is judged, stop asking
                if failure is None:
                    failure = exc
                    for f in futures:
                        f.cancel()
                continue
            cache.put_many(client.fingerprint, {keys[i]: {"outputs": outputs}})
            done[i] = Judged(_reading(i, outputs, read), outputs)
            stats.asked += 1
            stats.retries += len(replies) - 1
            stats.prompt_tokens += sum(r.prompt_tokens for r in replies)
            stats.completion_tokens += sum(r.completion_tokens for r in replies)
            stats.latencies += [r.seconds for r in replies]
            bar.update(1)
    bar.close()
    if failure is not None:
        kept = len(done)
        raise UserError(f"{failure.message}; {kept} of {len(prompts)} judgements are in the cache, rerun to judge "
                        "the rest")
    stats.invalid = sum(done[i].reading is None for i in range(len(prompts)))
    stats.seconds = time.perf_counter() - started
    return [done[i] for i in range(len(prompts))], stats
