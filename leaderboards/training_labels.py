"""A stage's training figures under the names of what they are, for every page that
shows them (the dashboard's drill-down, the report's pipeline section).

They come from a checkpoint manifest's ``train_metrics`` (and a reward model's ``eval``,
its held-out figures), which the trainers write with bare keys (``first_kl``,
``train_margin_before``); a bare "kl -0.02" reads as a divergence below zero.
"""

from __future__ import annotations

from typing import Optional


# What a stage's training figures are, said where they are shown (report, dashboard):
# PPO's ``kl`` is the k1 estimate (the sampled tokens' log pi - log pi_ref summed over a
# response, averaged over the batch), which is no KL divergence and can be negative; the
# reward model's figures are on its training pairs, ``eval`` ones on the held-out pairs.
TRAINING_LABELS = {
    "loss": "training loss",
    "reward": "reward-model score of sampled responses",
    "kl": "KL estimate to the reference ({estimator})",
    "margin": "implicit reward margin, chosen − rejected (training batches)",
    "accuracy": "implicit reward accuracy (training batches)",
    "pair_accuracy": "training-pair accuracy",
    "train_margin": "training-pair margin, r(chosen) − r(rejected)",
}
HELD_OUT_LABELS = {"pair_accuracy": "held-out pair accuracy", "margin": "held-out margin, r(chosen) − r(rejected)"}
ESTIMATORS = {"k1": "k1: Σ log π/π_ref per response, can be negative", "k3": "k3, never negative"}


def training_figures(metrics: dict, config: Optional[dict] = None, held_out: Optional[dict] = None
                     ) -> list[tuple[str, str]]:
    """(label, ``first → last``) of a stage's training figures (a manifest's or a pipeline
    record's ``train_metrics``) and (label, value) of a reward model's held-out ones
    (a manifest's ``eval``); ``config`` names the KL estimator (PPO's ``kl_estimator``)."""
    estimator = ESTIMATORS.get(str((config or {}).get("kl_estimator", "k1")), ESTIMATORS["k1"])
    out = []
    for key, value in (metrics or {}).items():
        for head, tail, prefix in (("first_", "", "last_"), ("train_", "_before", "train_")):
            if not (key.startswith(head) and key.endswith(tail)) or not isinstance(value, (int, float)):
                continue
            name = key[len(head):len(key) - len(tail) or None]
            last = metrics.get(f"{prefix}{name}" if head == "first_" else f"train_{name}_after")
            if isinstance(last, (int, float)):
                label = TRAINING_LABELS.get("train_margin" if head == "train_" and name == "margin" else name,
                                            name.replace("_", " "))
                out.append((label.format(estimator=estimator), f"{value:.4g} → {last:.4g}"))
    for key, label in (("steps", "steps"), ("pairs", "training pairs"), ("held_out_pairs", "held-out pairs")):
        if isinstance((metrics or {}).get(key), int):
            out.append((label, str(metrics[key])))
    for key, value in (held_out or {}).items():
        if isinstance(value, (int, float)):
            out.append((HELD_OUT_LABELS.get(key, f"held-out {key.replace('_', ' ')}"), f"{value:.4g}"))
    return out
