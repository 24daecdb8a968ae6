"""The Models page (``book/training.md``): per preset, what was trained, the training curves, the sanity
table and the quality gates (:mod:`mimstudy.book.claims.gates`) with their numbers, and the provenance."""

from __future__ import annotations

import matplotlib.pyplot as plt
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.claims.evidence import load_pilots
from mimstudy.book.claims.gates import gate_table
from mimstudy.book.stored import (OBJECTIVE_LABELS, evaluation_table, load_results, parameters_of, preset_heading,
                                 provenance_markdown)
from mimstudy.book.plots import plot_training_curves


def models_markdown(pretrain: xr.Dataset, preset: str) -> str:
    """One line per trained model (objective, backbone, budget, initialisation) and the objectives not trained."""
    notes = []
    for m in pretrain["model"].values:
        objective = str(pretrain["objective"].sel(model=m).item())
        params = parameters_of(pretrain, m)
        line = f"- `{m}`: {OBJECTIVE_LABELS.get(objective, objective)} on `{pretrain['arch'].sel(model=m).item()}`"
        line += f", {params.get('epochs', '?')} epochs on {params.get('train_size', '?')} images"
        if params.get("init_from"):
            line += f", initialised from `{params['init_from']}`"
        notes.append(line + ".")
    missing = [OBJECTIVE_LABELS[o] for o in OBJECTIVE_LABELS if o not in set(pretrain["objective"].values)]
    return (f"Models of the `{preset}` preset:\n\n" + "\n".join(notes)
            + (f"\n\nNot trained in this preset: {', '.join(missing)}." if missing else ""))


def show_preset(preset: str) -> None:
    """The models of one preset: what was trained, training curves, sanity table, gates, provenance."""
    display(Markdown(preset_heading(preset)))
    pretrain = load_results("pretrain", preset)
    display(Markdown(models_markdown(pretrain, preset)))
    plot_training_curves(pretrain)
    plt.show()
    evaluate = load_results("evaluate", preset)
    display(Markdown(f"**Sanity table, `{preset}` preset.**\n\n" + evaluation_table(evaluate)))
    display(Markdown(f"**Quality gates, `{preset}` preset.**\n\n" + gate_table(evaluate, pretrain, load_pilots(preset))))
    display(Markdown(provenance_markdown(pretrain, label="pre-training") + "\n\n"
                     + provenance_markdown(evaluate, label="evaluation")))
