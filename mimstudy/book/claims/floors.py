"""Effect-size floors of the Section 3 / Appendix A checks, each derived — never typed as a bare number.

Where the paper gives a number, the floor is that number: CKA between layers in [0.9, 1.0] for MIM
against [0.5, 1.0] supervised (§3.2), so "all layers alike" is a smallest off-diagonal CKA ≥ 0.9, and a
CKA difference counts from 0.1, the width of the range the paper calls "almost the same" (two models
closer than that can both lie in it).

Where the paper gives only a figure, the floor is a **construction on our own attention grid** — the
ViT's patch grid, or the window a Swin block attends within (every Swin micro stage: 4 × 4 tokens) —
computed here from the architecture, so that a floor means the same thing on both backbones (a λ of
0.5 is a 2-token mean distance on an 8 × 8 grid but 1 token in a 4 × 4 window):

* a **local head** attends at least as near as a head that attends uniformly to the keys within one
  grid step of its query (Chebyshev distance ≤ 1, itself included): its λ = 1 − d / d_uniform;
* a **locality difference** (λ, or the locality gain) is at least the change when such a head's reach
  grows from one grid step to two: λ(1) − λ(2);
* an **entropy difference** (entropy / log N) is at least the same change in entropy: f(2) − f(1); a
  difference of the **spread over heads** (their standard deviation) is at least half of it — the
  spread of two heads, one of each reach;
* a **head-diversity difference** (KL in nats, which log N does not bound) is at least the KL between
  those two heads, KL(reach 1 ‖ reach 2) = log(n₂ / n₁) averaged over queries (n: keys in reach).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PAPER_CKA_MIM = (0.9, 1.0)  # §3.2: "CKA ... [0.9, 1.0]" for MIM layers
PAPER_CKA_SUP = (0.5, 1.0)  # §3.2: supervised layers, [0.5, 1.0]


@dataclass(frozen=True)
class Floor:
    """A floor's value, its words for a table, and how it was derived (for the page)."""

    value: float
    words: str
    derivation: str


def reach(side: int, steps: int) -> tuple[float, float, np.ndarray]:
    """For a head that attends uniformly to the keys within ``steps`` grid steps (Chebyshev) of its
    query on a ``side`` × ``side`` grid: its λ (1 − mean distance / uniform attention's, Euclidean
    distances between token centres as the probes measure them), its entropy over log N, and the keys
    each query reaches."""
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    centres = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    distance = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))
    near = np.abs(centres[:, None] - centres[None]).max(-1) <= steps
    keys = near.sum(1)
    mean_distance = ((distance * near).sum(1) / keys).mean()
    return 1 - mean_distance / distance.mean(), float(np.log(keys).mean() / np.log(side * side)), keys


@lru_cache(maxsize=None)
def attention_grid(arch: str) -> tuple[int, str]:
    """The square grid ``arch``'s attention reaches over, and its name: a ViT's patch grid, a Swin's
    window (the first stage's; every study Swin uses one window size)."""
    from mimstudy.models.backbones import create_backbone, grid_size_of, is_swin
    from mimstudy.models.geometry import swin_stages

    model = create_backbone(arch)
    if is_swin(model):
        window = swin_stages(model)[0].window
        return int(window[0]), f"the {window[0]} × {window[1]} window of `{arch}`"
    grid = grid_size_of(model)
    return int(grid[0]), f"the {grid[0]} × {grid[1]} patch grid of `{arch}`"


def grid_floors(side: int, where: str) -> dict[str, Floor]:
    """The constructed floors (module docstring) on a ``side`` × ``side`` grid named ``where``."""
    lam1, f1, keys1 = reach(side, 1)
    lam2, f2, keys2 = reach(side, 2)
    kl = float(np.log(keys2 / keys1).mean())
    head = f"a head attending uniformly within one grid step of its query on {where}"
    grow = "the one-step head of the local-head floor widening its reach to two steps"
    return {
        "local_head": Floor(lam1, f"λ ≥ {lam1:.3f}", f"λ of {head} = {lam1:.3f}"),
        "locality": Floor(lam1 - lam2, f"≥ {lam1 - lam2:.3f} in λ",
                          f"the λ lost by {grow}: {lam1:.3f} − {lam2:.3f} = {lam1 - lam2:.3f}"),
        "entropy": Floor(f2 - f1, f"≥ {f2 - f1:.3f} of log N",
                         f"the entropy / log N gained by {grow}: {f2:.3f} − {f1:.3f} = {f2 - f1:.3f}"),
        "spread": Floor((f2 - f1) / 2, f"≥ {(f2 - f1) / 2:.3f} of log N",
                        f"the spread (std) of two heads, one of each reach: ({f2:.3f} − {f1:.3f}) / 2"),
        "kl": Floor(kl, f"≥ {kl:.3f} nats",
                    f"KL between the one-step head and a two-step one, log(n₂ / n₁) over queries = {kl:.3f} nats"),
    }


def paper_floors() -> dict[str, Floor]:
    """The floors the paper's numbers give (module docstring)."""
    low, high = PAPER_CKA_MIM
    width = round(high - low, 6)
    return {
        "cka_alike": Floor(low, f"≥ {low:g} (the paper: [{low:g}, {high:g}])",
                           f"the lower end of the paper's MIM range [{low:g}, {high:g}] (§3.2)"),
        "cka": Floor(width, f"≥ {width:g}",
                     f"the width of the paper's MIM range [{low:g}, {high:g}] (§3.2): two models closer than that "
                     "can both lie in the range the paper calls almost the same"),
    }


def probe_floors(arch: str) -> dict[str, Floor]:
    """Every floor of a Section 3 / Appendix A check on ``arch``, by kind."""
    side, where = attention_grid(arch)
    return {**grid_floors(side, where), **paper_floors()}


KINDS = {  # a floor kind in words, for the pages' rules
    "local_head": "a local head (one grid step)", "locality": "a locality difference (one step of reach)",
    "entropy": "an entropy difference (one step of reach)", "spread": "a spread over heads (half a step of reach)",
    "kl": "a head-diversity difference (KL of one step of reach)", "cka_alike": "the paper's MIM CKA range, 0.9",
    "cka": "a CKA difference (the width of the paper's MIM range, 0.1)",
}
FLOOR_RULES = (
    "a local head: λ of a head that attends uniformly within one grid step of its query (Chebyshev, itself "
    "included), on the model's attention grid (a ViT's patch grid, a Swin block's window)",
    "a locality difference (λ or locality gain): the λ that head loses when its reach grows to two steps",
    "an entropy difference (entropy / log N): the entropy that head gains when its reach grows to two steps; a "
    "spread over heads: half of it (the std of two heads, one of each reach)",
    "a head-diversity difference (KL, nats): the KL between the two heads, log(n₂ / n₁) over queries",
    f"CKA: the paper's numbers (§3.2: MIM [{PAPER_CKA_MIM[0]:g}, {PAPER_CKA_MIM[1]:g}], supervised "
    f"[{PAPER_CKA_SUP[0]:g}, {PAPER_CKA_SUP[1]:g}]): all alike ≥ {PAPER_CKA_MIM[0]:g}; a difference ≥ the "
    "width of the MIM range",
)
