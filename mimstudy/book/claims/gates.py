"""Quality gates: did a model learn what it was trained for, by a margin larger than the noise?

A gate answers one question per model — *did this model learn what it was trained for?* — and never
decides part of a claim in advance: a self-supervised model is not asked to be linearly separable (the
paper reads weak linear probes as a *property* of MIM). Each gate compares the model with what it would
score without having learned, on its own objective, from the stored results:

* **supervised** and **SimMIM → fine-tuned** models (they are trained to classify): the linear probe on
  the features their classifier reads (``pool=head``, the ``evaluate`` notebook) against the raw pixels'
  linear probe and against the same architecture at random init. The same-data reference classifier
  (:data:`REFERENCE_ROLE`) is shown beside, not as a ratio that flips on one image, and the last epoch's
  gain is shown for information (a cosine schedule that ends at a tiny rate levels off by construction);
* **MoCo v3**: its last validation contrastive top-1 (``val_contrastive_top1``, the pre-training curves)
  against the same network at random init (an epoch-0 value of the curve, or the pilot's
  ``val_contrastive_top1_random_init``);
* **SimMIM**: its last validation masked-pixel l1 against copying the nearest visible pixel, on the same
  validation images and masks (per run, as the preset's pilot stores them,
  :func:`mimstudy.study.regime.pilot`).

Every gate has a **noise band**: the larger of the sampling band over the evaluated images (95%,
binomial, for an accuracy over ``n`` test images: ``1.96·sqrt(p₁q₁/n + p₂q₂/n)``) and the spread over
training seeds (``1.96 ×`` the standard deviation of the same margin over the role's seeds, when it has
two or more). The gate **passes** when the margin is above the band, **fails** when it is below minus the
band, and is **unknown** inside the band — or when the band cannot be measured (a margin with no
per-image values from a single seed) or a number is not stored. A verdict that reads a model whose gate
fails or is unknown is undetermined (:func:`mimstudy.book.claims.verdicts.blockers`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

Z = 1.96  # two-sided 95% normal quantile of the noise bands
REFERENCE_ROLE = "replk_sup"  # the reference classifier's run (role) in a preset; run id replk_sup-s<seed>
LABELLED = ("supervised", "finetune")
SELF_SUPERVISED = ("moco", "simmim")
POOLS = {"labelled": "head", "self_supervised": "patch_mean"}  # the features each kind is read on
RUN_SEED = re.compile(r"^(?P<role>.+?)(?:-s(?P<seed>\d+))?$")
BASELINES = ("nearest_visible_l1", "visible_mean_l1", "position_mean_l1")  # hand predictors of masked pixels
MOCO_RANDOM = "val_contrastive_top1_random_init"  # a pilot variable: MoCo's contrastive top-1 at random init
PILOT_VARIABLES = (*BASELINES, MOCO_RANDOM)  # what the gates read from a preset's pilots


@dataclass
class GateResult:
    """``status``: ``pass``, ``fail`` or ``unknown``; ``lines``: one sentence per gate, with its numbers;
    ``margins``: ``{gate: (margin, noise band or None)}`` of the gates that have a margin."""

    model: str
    status: str
    lines: list[str]
    failed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    margins: dict[str, tuple[float, float | None]] = field(default_factory=dict)


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


def _parameters(ds: xr.Dataset | None, model: str) -> dict | None:
    if ds is None or model not in ds["model"].values or "provenance" not in ds.coords:
        return None
    attrs = json.loads(str(ds["provenance"].sel(model=model).item()))
    params = attrs.get("parameters", "{}")
    return json.loads(params) if isinstance(params, str) else dict(params)


def _curve(pretrain: xr.Dataset | None, model: str, var: str) -> xr.DataArray | None:
    if pretrain is None or var not in pretrain or model not in pretrain["model"].values:
        return None
    return pretrain[var].sel(model=model).dropna("epoch")


def binomial_band(p1: float, p2: float, n: int | None) -> float | None:
    """95% band of the difference of two accuracies, each over the same ``n`` images (``None`` without ``n``)."""
    if not n:
        return None
    return Z * float(np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n))


def seed_band(margins: list[float]) -> float | None:
    """``1.96 ×`` the standard deviation of one margin over training seeds (``None`` with fewer than two)."""
    values = [m for m in margins if m is not None]
    return Z * float(np.std(values, ddof=1)) if len(values) >= 2 else None


def noise_band(*bands: float | None) -> float | None:
    """The largest of the measurable bands (``None`` when none is)."""
    known = [b for b in bands if b is not None]
    return max(known) if known else None


class _Gates:
    """Collects one model's gate lines: each gate passes, fails or is unknown against its noise band."""

    def __init__(self, model: str):
        self.model, self.lines, self.failed, self.unknown, self.margins = model, [], [], [], {}

    def missing(self, words: str, why: str) -> None:
        text = f"{words}: unknown — {why}"
        self.lines.append(text)
        self.unknown.append(f"`{self.model}`: {text}")

    def banded(self, words: str, margin: float, band: float | None, numbers: str, no_band: str = "") -> None:
        """Pass above ``band``, fail below ``-band``, unknown inside it or without a band."""
        self.margins[words] = (margin, band)
        shown = f"{numbers}; margin {margin:+.3g}, noise band " + (f"±{band:.3g}" if band is not None else "unmeasured")
        if band is None:
            self.missing(words, f"{shown} ({no_band or 'no noise band can be measured'})")
        elif margin > band:
            self.lines.append(f"{words}: {shown} — pass")
        elif margin < -band:
            self.lines.append(f"{words}: {shown} — FAIL")
            self.failed.append(f"`{self.model}` {words} ({shown})")
        else:
            self.missing(words, f"{shown}: inside the noise band")

    def info(self, text: str) -> None:
        self.lines.append(f"(information) {text}")

    def result(self) -> GateResult:
        status = "fail" if self.failed else "unknown" if self.unknown else "pass"
        return GateResult(self.model, status, self.lines, self.failed, self.unknown, self.margins)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def siblings(ds: xr.Dataset | None, model: str) -> list[str]:
    """The runs of ``ds`` of the same role as ``model`` (its other training seeds), ``model`` included."""
    if ds is None:
        return [model]
    role = role_of(model)[0]
    return [str(m) for m in ds["model"].values if role_of(str(m))[0] == role] or [model]


def _labelled(g: _Gates, evaluate, pretrain, model: str) -> None:
    pool = POOLS["labelled"]
    n = (_parameters(evaluate, model) or {}).get("test_size")
    for against, name in (("raw_pixels", "raw pixels"), ("random_init", "random init")):
        words = f"linear probe ({pool}) above the {name}' linear probe" if against == "raw_pixels" else \
            f"linear probe ({pool}) above the {name} linear probe"

        def margin(m: str, against=against) -> float | None:
            mine, other = (accuracy(evaluate, m, "linear_accuracy", w, pool) for w in ("pretrained", against))
            return None if mine is None or other is None else mine - other

        mine, other = (accuracy(evaluate, model, "linear_accuracy", w, pool) for w in ("pretrained", against))
        if mine is None or other is None:
            g.missing(words, f"the pre-trained or {name} linear accuracy is not stored (re-run `evaluate`)")
            continue
        band = noise_band(binomial_band(mine, other, n), seed_band([margin(m) for m in siblings(evaluate, model)]))
        g.banded(words, mine - other, band, f"{_pct(mine)} vs {_pct(other)}",
                 "the evaluation stores no test-set size and there is one seed")
    ref = reference_of(model)
    ref_acc, mine = (accuracy(evaluate, m, "linear_accuracy", "pretrained", pool) for m in (ref, model))
    if model == ref:
        g.info("this is the reference classifier")
    elif ref_acc is not None and mine is not None:
        g.info(f"beside the same-data reference classifier `{ref}`: {_pct(mine)} vs {_pct(ref_acc)}")
    curve = _curve(pretrain, model, "val_accuracy")
    if curve is not None and curve.sizes["epoch"] >= 2:
        g.info(f"last epoch's validation gain {100 * float(curve[-1] - curve[-2]):+.2f} points")


def _moco(g: _Gates, pretrain, pilot_values: dict | None, model: str) -> None:
    words = "validation contrastive top-1 above the same network at random init"
    curve = _curve(pretrain, model, "val_contrastive_top1")
    if curve is None or not curve.sizes["epoch"]:
        g.missing(words, "no stored validation contrastive top-1 curve")
        return
    at_zero = curve.sel(epoch=0) if 0 in curve["epoch"].values else None
    random = float(at_zero) if at_zero is not None else (pilot_values or {}).get(MOCO_RANDOM)
    if random is None:
        g.missing(words, f"{_pct(float(curve[-1]))} trained, but the random-init contrastive top-1 is not stored "
                         "(an epoch-0 validation of the pre-training curve, or the pilot's "
                         f"`{MOCO_RANDOM}`)")
        return
    last, n = float(curve[-1]), (_parameters(pretrain, model) or {}).get("val_size")
    g.banded(words, last - random, binomial_band(last, random, n), f"{_pct(last)} vs {_pct(random)}",
             "the pre-training parameters store no validation size")


def _simmim(g: _Gates, pretrain, baselines: dict | None, model: str, sibling_margins: list[float | None]) -> None:
    words = "validation masked-pixel l1 below copying the nearest visible pixel (same images and masks)"
    loss = _curve(pretrain, model, "val_loss")
    if loss is None or not loss.sizes["epoch"]:
        g.missing(words, "no stored validation masked-pixel l1 curve")
    elif not baselines or baselines.get("nearest_visible_l1") is None:
        g.missing(words, "the hand baselines are not stored for this run (python -m mimstudy.study.regime --pilot "
                         "<preset> --seed <seed>)")
    else:
        nearest = baselines["nearest_visible_l1"]
        extra = "".join(f"; {name.replace('_l1', '').replace('_', ' ')} {baselines[name]:.3f}"
                        for name in ("visible_mean_l1", "position_mean_l1") if baselines.get(name) is not None)
        g.banded(words, nearest - float(loss[-1]), seed_band(sibling_margins), f"{float(loss[-1]):.3f} vs "
                 f"{nearest:.3f}{extra}", "no per-image l1 is stored, and one seed gives no spread over seeds")


def _linear_info(g: _Gates, evaluate, model: str) -> None:
    pool = POOLS["self_supervised"]
    values = {w: accuracy(evaluate, model, "linear_accuracy", w, pool) for w in ("pretrained", "random_init", "raw_pixels")}
    if all(v is not None for v in values.values()):
        g.info(f"linear probe ({pool}) {_pct(values['pretrained'])}, random init {_pct(values['random_init'])}, raw "
               f"pixels {_pct(values['raw_pixels'])} (not gated: a weak linear probe is part of what the paper "
               "says about MIM)")


def simmim_margin(pretrain, baselines: dict | None, model: str) -> float | None:
    """The SimMIM gate's margin of ``model``: nearest-visible l1 minus its last validation l1."""
    loss = _curve(pretrain, model, "val_loss")
    if loss is None or not loss.sizes["epoch"] or not baselines or baselines.get("nearest_visible_l1") is None:
        return None
    return baselines["nearest_visible_l1"] - float(loss[-1])


def check_gates(evaluate: xr.Dataset | None, model: str, objective: str, pretrain: xr.Dataset | None = None,
                baselines: dict[str, float] | None = None, pilot: xr.Dataset | None = None) -> GateResult:
    """The gate of ``objective`` applied to ``model`` (module docstring), from the stored evaluation,
    pre-training curves and pilot of its preset; ``baselines``: the hand predictors' masked-pixel l1 on
    the run's validation images and masks (``nearest_visible_l1``, ...)."""
    if objective not in LABELLED + SELF_SUPERVISED:
        return GateResult(model, "pass", ["no gate (a random-init control)"])
    g = _Gates(model)
    if objective in LABELLED:
        if evaluate is None or model not in evaluate["model"].values:
            g.missing("sanity evaluation", f"no sanity evaluation stored for `{model}` (run its `evaluate` step)")
            return g.result()
        _labelled(g, evaluate, pretrain, model)
    elif objective == "moco":
        _moco(g, pretrain, pilot_values(pilot, model), model)
        _linear_info(g, evaluate, model)
    else:
        margins = [simmim_margin(pretrain, masked_baselines(pilot, m) if pilot is not None else
                                 (baselines if m == model else None), m) for m in siblings(pretrain, model)]
        _simmim(g, pretrain, baselines, model, margins)
        _linear_info(g, evaluate, model)
    return g.result()


def pilot_values(pilot: xr.Dataset | None, model: str) -> dict[str, float] | None:
    """Every finite number the pilot stored for ``model`` (``None`` when it has none)."""
    if pilot is None or model not in pilot["model"].values:
        return None
    values = {name: float(pilot[name].sel(model=model)) for name in pilot.data_vars if pilot[name].dims == ("model",)}
    return {k: v for k, v in values.items() if v == v} or None


def masked_baselines(pilot: xr.Dataset | None, model: str) -> dict[str, float] | None:
    """The hand predictors' masked-pixel l1 the pilot stored for ``model`` (``None`` when it has none)."""
    values = pilot_values(pilot, model) or {}
    return {k: v for k, v in values.items() if k in BASELINES} or None  # NaN: not a SimMIM run of the pilot


def gate_table(evaluate: xr.Dataset, pretrain: xr.Dataset | None = None, pilot: xr.Dataset | None = None) -> str:
    """Markdown: every model of ``evaluate`` with its gates, their margins, noise bands and pass / FAIL / unknown."""
    rows = ["| model | objective | gate | status |", "|---|---|---|---|"]
    for model in evaluate["model"].values:
        objective = str(evaluate["objective"].sel(model=model).item())
        result = check_gates(evaluate, str(model), objective, pretrain, masked_baselines(pilot, str(model)), pilot)
        rows.append(f"| `{model}` | {objective} | {'<br>'.join(result.lines)} | **{result.status}** |")
    return "\n".join(rows)


def gate_rules() -> str:
    """Markdown: the gates in words, with their noise bands."""
    return "\n".join([
        f"- {', '.join(LABELLED)} (trained to classify; read on `pool={POOLS['labelled']}`): linear probe above the "
        "raw pixels' and above the same architecture's at random init. The same-data reference classifier "
        f"`{REFERENCE_ROLE}-s<seed>` and the last epoch's gain are shown beside, not gated.",
        "- MoCo v3: last validation contrastive top-1 above the same network's at random init.",
        "- SimMIM: last validation masked-pixel l1 below copying the nearest visible pixel, on the same validation "
        "images and masks (stored per run by the preset's pilot). Linear probes of self-supervised models are "
        "shown, not gated: the paper reads a weak linear probe as a property of MIM.",
        f"- Every margin is read against a noise band: the larger of the 95% binomial band over the evaluated images "
        f"({Z:g}·sqrt(p₁q₁/n + p₂q₂/n)) and {Z:g} × the margin's standard deviation over the role's training seeds "
        "(two or more). Above the band: pass; below minus the band: fail; inside it, or with no measurable band: "
        "*unknown*.",
    ])
