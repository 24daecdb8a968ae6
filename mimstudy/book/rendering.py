"""Verdicts as Markdown: one short coloured line first, the checks behind it; the scorecard; the rules.

Every page and the scorecard render verdicts from :func:`judge_page` / :func:`scorecard_rows`, both of
which call ``claim.judge(results)`` of :mod:`mimstudy.book.claims.registry`, so they agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mimstudy.book.claims.probes import ProbeClaim
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.floors import FLOOR_RULES
from mimstudy.book.claims.registry import CLAIMS, claims_on_page
from mimstudy.book.claims.verdicts import FLOOR_ORIGINS, Claim, ClaimVerdict

COLOURS = {"supported": "#1a7f37", "partly supported": "#9a6700", "not supported": "#cf222e",
           "undetermined": "#57606a", "not run": "#57606a"}


def verdict_badge(verdict: ClaimVerdict) -> str:
    """The verdict word in its colour (inline HTML, kept by the book's Markdown renderer)."""
    colour = COLOURS.get(verdict.verdict, "#57606a")
    return f'<span style="color: {colour}; font-weight: bold">{verdict.verdict}</span>'


def verdict_markdown(claim: Claim, verdict: ClaimVerdict, preset: str) -> str:
    """One short coloured line (verdict, claim, `preset`, the blockers' tags), then the reasons and checks in a
    collapsed block."""
    tags = list(dict.fromkeys(b.tag or "blocked" for b in verdict.blockers))
    why = f" (blocked: {', '.join(tags)})" if tags else ""
    line = f"{verdict_badge(verdict)} · **{claim.title}** ({claim.where}), `{preset}`{why}"
    return (f"{line}\n\n<details><summary>Checks, estimates and what would change it</summary>\n\n"
            f"{verdict.summary()}\n\n*What would change it:* {verdict.what_would_change()}\n\n</details>")


@dataclass
class Judged:
    """A claim judged on a preset, for closing paragraphs and the scorecard."""

    claim: Claim
    preset: str
    verdict: ClaimVerdict = field(repr=False)


def judge_page(page: str, results: PresetResults) -> list[Judged]:
    """Every claim shown on ``page``, judged on ``results``."""
    return [Judged(c, results.preset, c.judge(results)) for c in claims_on_page(page)]


def verdicts_markdown(judged: list[Judged]) -> str:
    """The verdicts of one preset on a page, headed ``Verdict on the `preset` results``."""
    if not judged:
        return ""
    return f"**Verdict on the `{judged[0].preset}` results.**\n\n" + "\n\n".join(
        verdict_markdown(j.claim, j.verdict, j.preset) for j in judged)


def closing_markdown(judged: list[Judged]) -> str:
    """The chapter's closing paragraph: per verdict, what would change it (generated, never typed)."""
    lines = ["**What would change these verdicts.**", ""]
    for item in judged:
        lines.append(f"- {item.claim.title}, `{item.preset}` ({item.verdict.verdict}): "
                     + item.verdict.what_would_change())
    return "\n".join(lines)


def rules_markdown(page: str) -> str:
    """How the page's verdicts are made, with every check's floor and null, generated from the registry."""
    claims = claims_on_page(page)
    lines = ["**How the verdicts are made.** Each check is an effect size on an absolute scale with a floor it "
             "must clear and a null it rejects. It *holds* when its whole 95% interval lies past the floor and, "
             "where the claim has one, past the same statistic on random-init models of the same architecture (the "
             "control); it *fails* when the whole interval lies on the wrong side of either, and is *inconclusive* "
             "when it straddles one. A difference between two models has a random-init control of zero by "
             "construction, which is said, not counted as a control. Intervals are t intervals over ≥ 3 "
             "independent training seeds; with fewer seeds, copied seeds, stale results, a model whose quality gate "
             "fails or is unknown (see the Models page), a missing value or an inconclusive check (and none "
             "failing), the verdict is *undetermined* and the effect is shown for information. The checks:", ""]
    for c in claims:
        lines.append(f"- *{c.title}* ({c.where}):")
        lines += [f"    - {floor}" for floor in c.floors()]
    origins = list(dict.fromkeys(key for c in claims for key in c.floor_keys()))
    if origins:
        lines += ["", "Where these floors come from (the null of each check: the effect lies short of its floor):", ""]
        lines += [f"- {FLOOR_ORIGINS[key]}" for key in origins]
    if any(isinstance(c, ProbeClaim) for c in claims):
        lines += ["", "The floors' kinds, derived in `mimstudy/book/claims/floors.py` (each verdict shows the value for its "
                      "architecture and the derivation):", ""] + [f"- {rule}" for rule in FLOOR_RULES]
    return "\n".join(lines)


def short_cell(verdict: ClaimVerdict) -> str:
    """The verdict, its blockers' tags and the first check's effect [interval] (floor), for one table cell."""
    tags = list(dict.fromkeys(b.tag or "blocked" for b in verdict.blockers))
    head = f"**{verdict.verdict}**" + (f" ({', '.join(tags)})" if tags else "")
    checks = [c for c in verdict.checks if not np.isnan(c.estimate.value)]
    if not checks:
        return head
    first = checks[0]
    more = f" +{len(verdict.checks) - 1} more" if len(verdict.checks) > 1 else ""
    return f"{head}<br>{first.estimate.short()} (floor {first.threshold:.3g}){more}"


PAGE_TITLES = {"attention_distance": "3.1.1", "mask_sweep": "Fig. 2(a)", "attention_entropy": "3.1.2",
               "head_diversity": "3.1.3", "cka": "3.2", "swin": "Appendix A", "semantic": "4.1", "geometric_tasks": "4.2",
               "combined_tasks": "4.3",
               "convnet": "Appendix B"}


def scorecard_rows(results: list[PresetResults]) -> list[tuple[Claim, list[ClaimVerdict]]]:
    """Every claim of the registry with its verdict on each preset's results."""
    return [(c, [c.judge(r) for r in results]) for c in CLAIMS]


def scorecard_markdown(presets: list[str]) -> str:
    """The scorecard table: one row per claim, one verdict cell per preset, a link to the page that shows it."""
    results = [PresetResults(p) for p in presets]
    results = [r for r in results if r.probes is not None or r.pretrain is not None or r.downstream is not None]
    head = ["claim", "where"] + [f"`{r.preset}`" for r in results] + ["shown in"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c, verdicts in scorecard_rows(results):
        cells = [c.title, c.where] + [short_cell(v) for v in verdicts]
        cells.append(f"[{PAGE_TITLES.get(c.page, c.page)}]({c.page}.md)" if c.page else "–")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
