"""Quality gates: a model must have learned enough before a verdict reads anything into its probes.

One table, :data:`GATES`, read from the stored sanity evaluation (``results/<preset>/evaluate/*.nc``,
the ``evaluate`` notebook: test accuracy of a k-NN classifier and of a linear probe on the frozen
features, for the pre-trained model (``weights=pretrained``), the same architecture at random
initialisation (``random_init``) and the raw pixels (``raw_pixels``); where the evaluation stores two
poolings, the gates read the mean of the patch tokens (``pool=patch_mean``), the same features for
every objective, since SimMIM never trains a ViT's CLS token):

* a model trained with labels (supervised, SimMIM then fine-tuned) must reach **90 % test top-1 with
  the linear probe** on its frozen features — DeiT-style training reaches well above that on
  Fashion-MNIST; below it the network is still a weak classifier;
* a self-supervised model (MoCo v3, SimMIM) must beat the **same architecture at random init by at
  least 5 points** on both k-NN and linear probes (a random ViT already reaches 45-70 % here), and
  must beat the **raw pixels** on both: features worse than the pixels they were computed from show
  that the model has not learned a representation yet.

A gate whose number is not stored (an older evaluation without the raw-pixel row, a model with no
evaluation) is *unknown*, and a verdict that needs it is undetermined, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr


@dataclass(frozen=True)
class Gate:
    """``metric`` of the pre-trained model must reach ``margin`` (``against="absolute"``) or exceed the
    same metric of ``against`` (``random_init`` / ``raw_pixels``) by ``margin``."""

    objectives: tuple[str, ...]
    metric: str  # knn_accuracy | linear_accuracy
    against: str  # absolute | random_init | raw_pixels
    margin: float

    @property
    def words(self) -> str:
        metric = {"knn_accuracy": "k-NN", "linear_accuracy": "linear-probe"}[self.metric]
        if self.against == "absolute":
            return f"{metric} test accuracy ≥ {100 * self.margin:g} %"
        other = {"random_init": "random init", "raw_pixels": "raw pixels"}[self.against]
        return f"{metric} accuracy ≥ {other} + {100 * self.margin:g} points" if self.margin else \
            f"{metric} accuracy > {other}"


LABELLED = ("supervised", "finetune")
SELF_SUPERVISED = ("moco", "simmim")
GATES: tuple[Gate, ...] = (
    Gate(LABELLED, "linear_accuracy", "absolute", 0.90),
    Gate(SELF_SUPERVISED, "knn_accuracy", "random_init", 0.05),
    Gate(SELF_SUPERVISED, "linear_accuracy", "random_init", 0.05),
    Gate(SELF_SUPERVISED, "knn_accuracy", "raw_pixels", 0.0),
    Gate(SELF_SUPERVISED, "linear_accuracy", "raw_pixels", 0.0),
)


@dataclass
class GateResult:
    """``status``: ``pass``, ``fail`` or ``unknown``; ``lines``: one sentence per gate of the model."""

    model: str
    status: str
    lines: list[str]
    failed: list[str]
    unknown: list[str]


GATE_POOL = "patch_mean"  # features the gates read: the mean of the patch tokens, the same for every objective


def _value(one: xr.Dataset, metric: str, weights: str) -> float | None:
    if metric not in one or weights not in one["weights"].values:
        return None
    value = one[metric].sel(weights=weights)
    if "pool" in value.dims:  # evaluations since pooling was recorded: the gates read patch-mean features
        value = value.sel(pool=GATE_POOL)
    value = float(value)
    return None if value != value else value  # NaN: not stored for this model


def check_gates(evaluate: xr.Dataset | None, model: str, objective: str) -> GateResult:
    """The gates of ``objective`` applied to ``model``'s row of the stored evaluation ``evaluate``."""
    gates = [g for g in GATES if objective in g.objectives]
    if not gates:
        return GateResult(model, "pass", ["no gate (a random-init control)"], [], [])
    if evaluate is None or model not in evaluate["model"].values:
        return GateResult(model, "unknown", [f"no sanity evaluation stored for `{model}`"], [],
                          [f"no sanity evaluation of `{model}` (run its `evaluate` step)"])
    one = evaluate.sel(model=model)
    lines, failed, unknown = [], [], []
    for gate in gates:
        mine = _value(one, gate.metric, "pretrained")
        other = 0.0 if gate.against == "absolute" else _value(one, gate.metric, gate.against)
        if mine is None or other is None:
            missing = gate.against.replace("_", "-") if mine is not None else "pre-trained"
            text = f"{gate.words}: the {missing} accuracy is not stored (re-run the `evaluate` step)"
            lines.append(text)
            unknown.append(f"`{model}`: {text}")
            continue
        ok = mine >= other + gate.margin if gate.margin else mine > other
        numbers = f"{100 * mine:.1f} %" + ("" if gate.against == "absolute" else f" vs {100 * other:.1f} %")
        lines.append(f"{gate.words}: {numbers} — {'pass' if ok else 'FAIL'}")
        if not ok:
            failed.append(f"`{model}` {gate.words} ({numbers})")
    status = "fail" if failed else "unknown" if unknown else "pass"
    return GateResult(model, status, lines, failed, unknown)


def gate_table(evaluate: xr.Dataset) -> str:
    """Markdown: every model of ``evaluate`` with its gates, their numbers and pass / FAIL / unknown."""
    rows = ["| model | objective | gate | status |", "|---|---|---|---|"]
    for model in evaluate["model"].values:
        objective = str(evaluate["objective"].sel(model=model).item())
        result = check_gates(evaluate, str(model), objective)
        rows.append(f"| `{model}` | {objective} | {'<br>'.join(result.lines)} | **{result.status}** |")
    return "\n".join(rows)


def gate_rules() -> str:
    """Markdown: the gate table in words, one line per objective group."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for gate in GATES:
        groups.setdefault(gate.objectives, []).append(gate.words)
    return "\n".join(f"- {', '.join(objectives)}: " + "; ".join(words) for objectives, words in groups.items())
