"""A backend added from the test folder, as a plugin would add one: one module exposing
``KIND`` and one entry point (``aimed.backends``: ``first-option = backend_plugin_example:KIND``).

It is a position-biased scorer with no weights: every option's log-likelihood falls with
its position and every generation answers the first letter, so its accuracy is exactly the
share of items whose answer is A (``--model prefer-B``: B; the model id reaches it)."""

from __future__ import annotations

from aimed.harness.models.backend import Backend, BackendKind, BackendOptions, CheckpointInfo
from aimed.harness.models.fingerprint import combine
from aimed.harness.models.requests import ContinuationScore


class PositionBackend:
    name = "first-option"

    def __init__(self, model: str):
        self.preferred = model.rsplit("-", 1)[-1] if model.startswith("prefer-") else "A"
        self.info = CheckpointInfo(model_folder=None, device="nowhere", dtype="none")
        self.model = model

    @property
    def tokenizer(self):
        raise AssertionError("not asked for unless --template_name tokenizer")

    def use_adapter(self, folder: str) -> None:
        raise AssertionError("a backend without local weights is never given adapters")

    def fingerprint(self, args, hash_folder) -> str:
        return combine("first-option", self.model)

    def loglikelihood(self, requests, bar=None):
        out = []
        for req in requests:
            # letter continuations (" A", "A") or option texts: position i scores -i, the preferred letter 1
            scores: list[ContinuationScore] = [(1.0 if c.strip() == self.preferred else -float(i), 1, i == 0)
                                               for i, c in enumerate(req.continuations)]
            out.append(scores)
            if bar is not None:
                bar.update(1)
        return out

    def generate(self, requests, bar=None):
        if bar is not None:
            bar.update(len(requests))
        return [f"答案：{self.preferred}" for _ in requests]


def _build(options: BackendOptions, runs) -> Backend:
    return PositionBackend(runs[0].model)


KIND = BackendKind(name="first-option", summary="answers by position (a test plugin)", build=_build,
                   local_weights=False)
