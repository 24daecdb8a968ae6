"""Quality gates: a model must have learned enough before a verdict reads anything into its probes.

Every gate is a comparison between two numbers of the stored results, never an absolute number: the
sanity evaluation (``results/<preset>/evaluate/<run>.nc``, the ``evaluate`` notebook: test accuracy of a
k-NN classifier and of a linear probe on frozen features, ``weights``: ``pretrained`` / ``random_init`` /
``raw_pixels``, ``pool``: ``head`` / ``patch_mean``) and the pre-training curves
(``results/<preset>/pretrain/<run>.nc``, ``val_accuracy`` and ``val_loss`` per ``epoch``).

* **labelled models** (supervised, SimMIM then fine-tuned) are read on the features their classifier
  reads (``pool=head``). Their linear probe must clear the raw pixels' linear probe by
  :data:`MARGIN_OVER_PIXELS`, reach :data:`REFERENCE_FRACTION` of the **reference classifier**'s
  (the preset's run :data:`REFERENCE_ROLE` of the same seed: a convolutional network trained
  supervised on the same images for the same steps; a preset without one leaves this gate *unknown*),
  and have levelled off: its last epoch gains less than :data:`PLATEAU_GAIN` validation accuracy.
* **self-supervised models** (MoCo v3, SimMIM) are read on the mean of their patch tokens
  (``pool=patch_mean``, the features every objective trains): the linear probe must clear the same
  architecture at random init by :data:`MARGIN_OVER_RANDOM` and beat the raw pixels' linear probe
  (linear against linear). A SimMIM model's last validation masked-pixel l1 must also beat copying the
  nearest visible pixel, measured on the same validation images and masks (the preset's pilot,
  :func:`mimstudy.study.regime.pilot`, stores it per run): a MIM model that does not has not learned the
  local structure the paper's claims are about. k-NN against raw pixels is shown for information only.

Each gate has three states: pass, fail and *unknown* (a number it needs is not stored); a verdict that
reads a model whose gate fails or is unknown is undetermined (:func:`mimstudy.book.verdicts.blockers`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import xarray as xr

MARGIN_OVER_PIXELS = 0.05  # a network's features must add 5 points to what a linear classifier reads off the pixels
REFERENCE_FRACTION = 0.9  # within 10 % of a same-data, same-steps CNN: well past chance, short of a fully trained one
PLATEAU_GAIN = 0.01  # < 1 point of validation accuracy in the last epoch: training has levelled off
MARGIN_OVER_RANDOM = 0.05  # 5 points above the same network untrained: the objective taught it something
REFERENCE_ROLE = "replk_sup"  # the reference classifier's run (role) in a preset; run id replk_sup-s<seed>
LABELLED = ("supervised", "finetune")
SELF_SUPERVISED = ("moco", "simmim")
POOLS = {"labelled": "head", "self_supervised": "patch_mean"}  # the features each kind is read on
BUDGET = ("dataset", "train_size", "epochs", "batch_size")  # what "same data, same steps" compares
RUN_SEED = re.compile(r"^(?P<role>.+?)(?:-s(?P<seed>\d+))?$")
BASELINES = ("nearest_visible_l1", "visible_mean_l1", "position_mean_l1")  # hand predictors of masked pixels


@dataclass
class GateResult:
    """``status``: ``pass``, ``fail`` or ``unknown``; ``lines``: one sentence per gate, with its numbers."""

    model: str
    status: str
    lines: list[str]
    failed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def role_of(run_id: str) -> tuple[str, str]:
    """``("vit_sup", "-s0")`` for ``vit_sup-s0``; ``("vit_sup", "")`` for a run id without a seed."""
    match = RUN_SEED.match(run_id)
    return match["role"], (f"-s{match['seed']}" if match["seed"] is not None else "")


def reference_of(run_id: str) -> str:
    """The reference classifier's run id for ``run_id``: :data:`REFERENCE_ROLE` with the same seed suffix."""
    return REFERENCE_ROLE + role_of(run_id)[1]


def accuracy(evaluate: xr.Dataset | None, model: str, metric: str, weights: str, pool: str) -> float | None:
    """One stored accuracy, or ``None`` when it is not stored (older evaluations scored only the head's
    features and stored no raw pixels) or NaN."""
    if evaluate is None or model not in evaluate["model"].values or metric not in evaluate:
        return None
    if weights not in evaluate["weights"].values:
        return None
    value = evaluate[metric].sel(model=model, weights=weights)
    if "pool" in value.dims:
        value = value.sel(pool="patch_mean" if weights == "raw_pixels" else pool)  # pixels: one value
    elif pool != "head" and weights != "raw_pixels":
        return None
    value = float(value)
    return None if value != value else value


def _parameters(pretrain: xr.Dataset | None, model: str) -> dict | None:
    if pretrain is None or model not in pretrain["model"].values or "provenance" not in pretrain.coords:
        return None
    attrs = json.loads(str(pretrain["provenance"].sel(model=model).item()))
    params = attrs.get("parameters", "{}")
    return json.loads(params) if isinstance(params, str) else dict(params)


def _curve(pretrain: xr.Dataset | None, model: str, var: str) -> xr.DataArray | None:
    if pretrain is None or var not in pretrain or model not in pretrain["model"].values:
        return None
    return pretrain[var].sel(model=model).dropna("epoch")


class _Gates:
    """Collects one model's gate lines: each rule passes, fails or is unknown."""

    def __init__(self, model: str):
        self.model, self.lines, self.failed, self.unknown = model, [], [], []

    def rule(self, words: str, ok: bool | None, numbers: str = "", missing: str = "") -> None:
        if ok is None:
            text = f"{words}: unknown — {missing}"
            self.lines.append(text)
            self.unknown.append(f"`{self.model}`: {text}")
            return
        self.lines.append(f"{words}: {numbers} — {'pass' if ok else 'FAIL'}")
        if not ok:
            self.failed.append(f"`{self.model}` {words} ({numbers})")

    def info(self, text: str) -> None:
        self.lines.append(f"(information) {text}")

    def result(self) -> GateResult:
        status = "fail" if self.failed else "unknown" if self.unknown else "pass"
        return GateResult(self.model, status, self.lines, self.failed, self.unknown)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _labelled(g: _Gates, evaluate, pretrain, model: str) -> None:
    pool = POOLS["labelled"]
    mine = accuracy(evaluate, model, "linear_accuracy", "pretrained", pool)
    pixels = accuracy(evaluate, model, "linear_accuracy", "raw_pixels", pool)
    words = f"linear probe ({pool}) ≥ raw pixels' linear probe + {100 * MARGIN_OVER_PIXELS:g} points"
    if mine is None or pixels is None:
        g.rule(words, None, missing="the pre-trained or raw-pixel linear accuracy is not stored (re-run `evaluate`)")
    else:
        g.rule(words, mine >= pixels + MARGIN_OVER_PIXELS, f"{_pct(mine)} vs {_pct(pixels)}")
    ref = reference_of(model)
    ref_acc = accuracy(evaluate, ref, "linear_accuracy", "pretrained", pool)
    words = f"linear probe ≥ {REFERENCE_FRACTION:g} × the reference classifier `{ref}`'s"
    mine_budget, ref_budget = _parameters(pretrain, model), _parameters(pretrain, ref)
    if model == ref:
        g.info("this is the reference classifier")
    elif ref_acc is None:
        g.rule(words, None, missing=f"this preset has no evaluated reference classifier `{ref}`")
    elif mine is None:
        g.rule(words, None, missing="the pre-trained linear accuracy is not stored")
    elif mine_budget is None or ref_budget is None:
        g.rule(words, None, missing="the pre-training parameters that show the same data and steps are not stored")
    elif any(mine_budget.get(k) != ref_budget.get(k) for k in BUDGET):
        differ = ", ".join(f"{k} {mine_budget.get(k)} vs {ref_budget.get(k)}" for k in BUDGET
                           if mine_budget.get(k) != ref_budget.get(k))
        g.rule(words, None, missing=f"the reference was trained on another budget ({differ})")
    else:
        g.rule(words, mine >= REFERENCE_FRACTION * ref_acc, f"{_pct(mine)} vs {_pct(ref_acc)}")
    curve = _curve(pretrain, model, "val_accuracy")
    words = f"plateau: the last epoch gains < {100 * PLATEAU_GAIN:g} point of validation accuracy"
    if curve is None or curve.sizes["epoch"] < 2:
        g.rule(words, None, missing="no stored validation-accuracy curve of two epochs or more")
    else:
        gain = float(curve[-1] - curve[-2])
        g.rule(words, gain < PLATEAU_GAIN, f"{100 * gain:+.2f} points ({_pct(float(curve[-2]))} → {_pct(float(curve[-1]))})")


def _self_supervised(g: _Gates, evaluate, pretrain, model: str, objective: str, baselines: dict | None) -> None:
    pool = POOLS["self_supervised"]
    mine = accuracy(evaluate, model, "linear_accuracy", "pretrained", pool)
    for against, margin in (("random_init", MARGIN_OVER_RANDOM), ("raw_pixels", 0.0)):
        other = accuracy(evaluate, model, "linear_accuracy", against, pool)
        name = {"random_init": "random init", "raw_pixels": "raw pixels"}[against]
        words = f"linear probe ({pool}) " + (f"≥ {name} + {100 * margin:g} points" if margin else f"> {name}")
        if mine is None or other is None:
            g.rule(words, None, missing=f"the pre-trained or {name} linear accuracy is not stored (re-run `evaluate`)")
        else:
            g.rule(words, mine >= other + margin if margin else mine > other, f"{_pct(mine)} vs {_pct(other)}")
    knn, knn_pixels = (accuracy(evaluate, model, "knn_accuracy", w, pool) for w in ("pretrained", "raw_pixels"))
    if knn is not None and knn_pixels is not None:
        g.info(f"k-NN ({pool}) {_pct(knn)} vs raw pixels' k-NN {_pct(knn_pixels)} (pooled features against "
               "pixel space: not a like-for-like gate)")
    if objective == "simmim":
        loss = _curve(pretrain, model, "val_loss")
        words = "validation masked-pixel l1 < the nearest visible pixel's (same images and masks)"
        if loss is None or not loss.sizes["epoch"]:
            g.rule(words, None, missing="no stored validation masked-pixel l1 curve")
        elif not baselines or baselines.get("nearest_visible_l1") is None:
            g.rule(words, None, missing="the hand baselines are not stored for this run (python -m "
                                        "mimstudy.study.regime --pilot <preset> --seed <seed>)")
        else:
            nearest = baselines["nearest_visible_l1"]
            extra = "".join(f"; {name.replace('_l1', '').replace('_', ' ')} {baselines[name]:.3f}"
                            for name in ("visible_mean_l1", "position_mean_l1") if baselines.get(name) is not None)
            g.rule(words, float(loss[-1]) < nearest, f"{float(loss[-1]):.3f} vs {nearest:.3f}{extra}")


def check_gates(evaluate: xr.Dataset | None, model: str, objective: str, pretrain: xr.Dataset | None = None,
                baselines: dict[str, float] | None = None) -> GateResult:
    """The gates of ``objective`` applied to ``model`` (module docstring), from the stored evaluation and
    pre-training curves of its preset; ``baselines``: the hand predictors' masked-pixel l1 on the run's
    validation images (``nearest_visible_l1``, ``visible_mean_l1``, ``position_mean_l1``)."""
    if objective not in LABELLED + SELF_SUPERVISED:
        return GateResult(model, "pass", ["no gate (a random-init control)"])
    g = _Gates(model)
    if evaluate is None or model not in evaluate["model"].values:
        g.rule("sanity evaluation", None, missing=f"no sanity evaluation stored for `{model}` (run its `evaluate` step)")
        return g.result()
    if objective in LABELLED:
        _labelled(g, evaluate, pretrain, model)
    else:
        _self_supervised(g, evaluate, pretrain, model, objective, baselines)
    return g.result()


def masked_baselines(pilot: xr.Dataset | None, model: str) -> dict[str, float] | None:
    """The hand predictors' masked-pixel l1 the pilot stored for ``model`` (``None`` when it has none)."""
    if pilot is None or model not in pilot["model"].values:
        return None
    values = {name: float(pilot[name].sel(model=model)) for name in BASELINES if name in pilot}
    return {k: v for k, v in values.items() if v == v} or None  # NaN: not a SimMIM run of the pilot


def gate_table(evaluate: xr.Dataset, pretrain: xr.Dataset | None = None, pilot: xr.Dataset | None = None) -> str:
    """Markdown: every model of ``evaluate`` with its gates, their numbers and pass / FAIL / unknown."""
    rows = ["| model | objective | gate | status |", "|---|---|---|---|"]
    for model in evaluate["model"].values:
        objective = str(evaluate["objective"].sel(model=model).item())
        result = check_gates(evaluate, str(model), objective, pretrain, masked_baselines(pilot, str(model)))
        rows.append(f"| `{model}` | {objective} | {'<br>'.join(result.lines)} | **{result.status}** |")
    return "\n".join(rows)


def gate_rules() -> str:
    """Markdown: the gates in words, with their constants and why."""
    return "\n".join([
        f"- {', '.join(LABELLED)} (read on `pool={POOLS['labelled']}`, the features their classifier reads): linear "
        f"probe ≥ raw pixels' linear probe + {100 * MARGIN_OVER_PIXELS:g} points; ≥ {REFERENCE_FRACTION:g} × the "
        f"linear probe of the reference classifier `{REFERENCE_ROLE}-s<seed>` (same images, same steps; *unknown* "
        f"in a preset without one); last epoch gains < {100 * PLATEAU_GAIN:g} point of validation accuracy.",
        f"- {', '.join(SELF_SUPERVISED)} (read on `pool={POOLS['self_supervised']}`): linear probe ≥ random init + "
        f"{100 * MARGIN_OVER_RANDOM:g} points and > raw pixels' linear probe; SimMIM: last validation masked-pixel "
        "l1 < copying the nearest visible pixel (same images and masks, stored by the preset's pilot). k-NN "
        "against raw pixels is shown for information, not gated.",
    ])
