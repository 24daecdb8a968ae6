"""The paper's Tables 1-6 (and the Section 3.2 layer-shuffling numbers) in the paper's layout, from
its transcribed numbers, and our analog's numbers in the same layout beside them.

The paper's numbers are ``data/reference_results.csv`` (a copy of the project's transcription of the
paper, one row per reported number). Each :class:`PaperTable` says which numbers go where: rows are
(backbone, pre-training) pairs, columns are grouped as in the paper. Our side reads the stored
results of the ``downstream`` notebook (fine-tuning on an analog of the paper's task, one dataset per
run with ``task``, ``objective``, ``arch``, ``keep_blocks`` and ``block_order`` coords and the task's
``primary_metric`` per fine-tuning ``seed``): a cell shows the mean over seeds of the full model
(all blocks, as trained) pre-trained with the row's objective, and ``not run`` when there is no
such result (or no analog of that column exists yet).

    from mimstudy.book.pages.paper_tables import TABLES, paper_table_html, our_table_html, differences_markdown
    html = paper_table_html("table2"); ours = our_table_html("table2", "quick")
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mimstudy.book.stored import PAPER_LABELS

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "data" / "reference_results.csv"
CSV_COLUMNS = ["table", "backbone", "pretrain", "task", "dataset", "metric", "higher_is_better", "value"]
NOT_RUN = "not run"
DOWNSTREAM_NOTEBOOK = "downstream"

# the paper's pre-training labels -> our objectives (None: no analog, e.g. ImageNet-22K pre-training)
OBJECTIVE_OF = {"1K-SUP": "supervised", "1K-MIM": "simmim", "RAND": "random", "22K-SUP": None,
                "1K-SUP-reparam": "supervised", "1K-MIM-no-reparam": "simmim", "reference": None}


@dataclass(frozen=True)
class Column:
    """One column of a paper table: its group heading, its label, and the CSV keys of its numbers.

    ``analog``: the ``task`` of our ``downstream`` runs that stands for it ('' when none is built)."""

    group: str
    label: str
    task: str
    dataset: str
    analog: str = ""
    table: str = ""  # the CSV table the number comes from, when it is not the table's own
    metric: str = ""  # the analog's variable shown ('': its primary metric)


@dataclass(frozen=True)
class PaperTable:
    key: str
    title: str
    caption: str  # the paper's caption, shortened
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, str, str], ...]  # (backbone, pretrain, CSV table)
    differences: str  # what our analog changes beyond scale and data (see differences_markdown)
    diff_columns: tuple[str, ...] = field(default=())  # columns where the paper prints MIM - SUP


def _cols(group: str, task: str, items, analog: str = "", table: str = "") -> tuple[Column, ...]:
    """Columns of ``items``: ``(label, dataset)`` pairs, or ``(label, dataset, analog)`` with an analog of their own."""
    return tuple(Column(group, item[0], task, item[1], item[2] if len(item) > 2 else analog, table) for item in items)


COG = [(f"L{i}", f"CoG-L{i}", f"cog_l{i}") for i in range(1, 6)]  # analogs: the ladder in its measured order
K12 = [("Food", "Food101"), ("Birdsnap", "Birdsnap"), ("Cars", "StanfordCars"),
       ("Aircraft", "FGVC-Aircraft", "k12_fine"),  # fine-grained, mean per-class accuracy as Kornblith et al.
       ("Average (7)", "K12-other-7-average")]
POSE = [("COCO val", "COCO-val"), ("COCO test", "COCO-test-dev"), ("CrowdPose", "CrowdPose")]

TABLES: dict[str, PaperTable] = {t.key: t for t in (
    PaperTable(
        "table1", "Table 1 · semantic understanding (SwinV2-B)",
        "Fine-tuning top-1 accuracy (↑; mean per-class for Aircraft) of MIM and supervised (SUP) pre-trained "
        "SwinV2-B on the Concept Generalization benchmark, Kornblith's 12 datasets (K12) and iNaturalist-18.",
        _cols("Concept Generalization (CoG)", "classification", COG)
        + _cols("Kornblith et al.'s 12 datasets (K12)", "classification", K12)
        + _cols("iNat18", "classification", [("iNat18", "iNat18", "inat_lite")]),
        (("SwinV2-B", "1K-SUP", "table1"), ("SwinV2-B", "1K-MIM", "table1")),
        "The analogs (design: CoG-lite, K12-lite, iNat-lite on generated 32-px images) fine-tune the whole "
        "model with a linear head, as the paper does."),
    PaperTable(
        "table2", "Table 2 · geometric and motion tasks",
        "Pose estimation AP (↑), monocular depth RMSE (↓) and tracking AO / SUC (↑) of MIM and supervised "
        "pre-trained models; HRFormer, BinsFormer and MixFormer are the paper's reference methods.",
        _cols("Pose estimation", "pose", POSE[:1], "pose") + _cols("Pose estimation", "pose", POSE[1:2])
        + _cols("Pose estimation", "pose", POSE[2:], "crowdpose")
        + _cols("Depth estimation", "depth", [("NYUv2", "NYUv2"), ("KITTI", "KITTI")])
        + _cols("Video object tracking", "tracking",
                [("GOT10k test", "GOT10k-test", "tracking"), ("TrackingNet", "TrackingNet"), ("LaSOT", "LaSOT")]),
        (("SwinV2-B", "1K-SUP", "table2"), ("SwinV2-B", "22K-SUP", "table2"), ("SwinV2-B", "1K-MIM", "table2"),
         ("SwinV2-L", "22K-SUP", "table2"), ("SwinV2-L", "1K-MIM", "table2"), ("HRFormer", "reference", "table2"),
         ("BinsFormer", "reference", "table2"), ("MixFormer", "reference", "table2")),
        "Pose: Puppet-Pose (COCO val's analog) and Puppet-Crowd (CrowdPose's), 32-px crops of a 13-joint "
        "figure textured with Fashion-MNIST, in COCO keypoints format, scored by pycocotools' OKS AP (×100) "
        "with a SimpleBaseline deconvolution head; COCO test-dev has no separate analog. Our models have no "
        "ImageNet-22K pre-training and no reference methods."),
    PaperTable(
        "table3", "Table 3 · large-kernel ConvNet (RepLKNet-31B, Appendix B)",
        "ImageNet-1K top-1 (↑) and pose AP (↑) of RepLKNet-31B, supervised with re-parametrization and MIM "
        "without it.",
        _cols("ImageNet-1K", "classification", [("top-1", "ImageNet-1K")])
        + _cols("Pose estimation", "pose", POSE[:1], "pose") + _cols("Pose estimation", "pose", POSE[1:2])
        + _cols("Pose estimation", "pose", POSE[2:], "crowdpose"),
        (("RepLKNet-31B", "1K-SUP-reparam", "table3"), ("RepLKNet-31B", "1K-MIM-no-reparam", "table3")),
        "The ConvNet analog is a ~1.5 M-parameter RepLKNet-style network (replk_mini in the design); only "
        "its rows count here (our rows list every architecture with results)."),
    PaperTable(
        "table4", "Table 4 · K12 in detail (SwinV2-B, Appendix C)",
        "Per-dataset accuracy (↑) on Kornblith's 12 datasets. The paper's text gives the per-dataset numbers "
        "only for the four datasets of Table 1 and the average of the other seven; those are shown here "
        "(the remaining columns of Table 4 are not transcribed).",
        _cols("Kornblith et al.'s 12 datasets (K12)", "classification", K12, table="table1"),
        (("SwinV2-B", "1K-SUP", "table1"), ("SwinV2-B", "1K-MIM", "table1")),
        "K12-lite (design): Fashion-MNIST-100 (covered classes, like CIFAR), digits and materials (new "
        "classes, like DTD), Fashion-MNIST-Fine (fine-grained)."),
    PaperTable(
        "table5", "Table 5 · CoG and iNat18 with a random-init control (SwinV2-B, Appendix C)",
        "Top-1 accuracy (↑) of randomly initialised (RAND), supervised and MIM pre-trained SwinV2-B.",
        _cols("Concept Generalization (CoG)", "classification", COG)
        + _cols("iNat18", "classification", [("iNat18", "iNat18", "inat_lite")]),
        (("SwinV2-B", "RAND", "table5"), ("SwinV2-B", "1K-SUP", "table1"), ("SwinV2-B", "1K-MIM", "table1")),
        "RAND is the same architecture fine-tuned from random initialisation, as in the paper."),
    PaperTable(
        "table6", "Table 6 · combined tasks: detection and semantic segmentation (SwinV2-B, Appendix D)",
        "COCO box and mask AP (↑, Mask R-CNN) and ADE-20K mIoU (↑, UperNet and Mask2Former); in brackets, "
        "MIM minus SUP as the paper prints it.",
        _cols("Object detection (COCO), Mask R-CNN", "detection", [("AP box", "COCO", "detection")])
        + (Column("Object detection (COCO), Mask R-CNN", "AP mask", "instance-segmentation", "COCO", "detection",
                  metric="mask_ap"),)
        + _cols("Semantic segmentation (ADE-20K)", "semantic-segmentation-UperNet",
                [("UperNet mIoU", "ADE20K", "segmentation")])
        + _cols("Semantic segmentation (ADE-20K)", "semantic-segmentation-Mask2Former",
                [("Mask2Former mIoU", "ADE20K")]),
        (("SwinV2-B", "1K-SUP", "table6"), ("SwinV2-B", "1K-MIM", "table6")),
        "GarmentScenes: 32-px crops of photographs with 1-3 Fashion-MNIST test garments, stored as COCO "
        "instances (Mask R-CNN on a ViTDet-style simple feature pyramid, box and mask AP by pycocotools) and in "
        "ADE20K's layout (a UPerNet-lite head, mIoU as mmseg); no Mask2Former analog.",
        diff_columns=("UperNet mIoU", "Mask2Former mIoU")),
    PaperTable(
        "sec3.2", "Section 3.2 · fine-tuning with randomly sampled layers (SwinV2-B)",
        "Pose AP (↑) and depth RMSE (↓) of the first 9 layers as trained and of 9 layers sampled at random "
        "from the 18 of stage 3 (numbers from the paper's text).",
        _cols("COCO val pose AP", "pose-first9-layers", [("first 9", "COCO-val")])
        + _cols("COCO val pose AP", "pose-first9-shuffled", [("9 sampled", "COCO-val")])
        + _cols("NYUv2 depth RMSE", "depth-first9-layers", [("first 9", "NYUv2")])
        + _cols("NYUv2 depth RMSE", "depth-first9-shuffled", [("9 sampled", "NYUv2")]),
        (("SwinV2-B", "1K-SUP", "sec3.2"), ("SwinV2-B", "1K-MIM", "sec3.2")),
        "Our analog keeps and samples blocks of a small ViT or SwinV2 on Puppet-Pose (keep_blocks and "
        "block_order of the downstream runs); those cells stay 'not run' here and are shown in the "
        "geometric-tasks chapter."),
)}


@lru_cache(maxsize=None)
def reference_results(path: str | Path = REFERENCE_CSV) -> pd.DataFrame:
    """The paper's numbers, one row per number (values kept as printed, e.g. ``0.352``)."""
    frame = pd.read_csv(path, comment="#", names=CSV_COLUMNS, dtype=str)
    frame["higher_is_better"] = frame["higher_is_better"].astype(int).astype(bool)
    return frame


def paper_value(table: PaperTable, row: tuple[str, str, str], column: Column) -> str | None:
    """The number the paper prints in this cell, as printed (``None``: not reported or not transcribed)."""
    frame = reference_results()
    backbone, pretrain, source = row
    hit = frame[(frame.table == (column.table or source)) & (frame.backbone == backbone)
                & (frame.pretrain == pretrain) & (frame.task == column.task) & (frame.dataset == column.dataset)]
    return None if hit.empty else str(hit.value.iloc[0])


def lower_is_better(column: Column, rows) -> bool:
    frame = reference_results()
    hit = frame[(frame.task == column.task) & (frame.dataset == column.dataset)]
    return not hit.empty and not bool(hit.higher_is_better.iloc[0])


def _header(table: PaperTable, first: list[str]) -> str:
    groups: list[tuple[str, int]] = []
    for column in table.columns:
        if groups and groups[-1][0] == column.group:
            groups[-1] = (column.group, groups[-1][1] + 1)
        else:
            groups.append((column.group, 1))
    top = "".join(f"<th rowspan=\"2\">{html.escape(h)}</th>" for h in first)
    top += "".join(f"<th colspan=\"{n}\">{html.escape(g)}</th>" for g, n in groups)
    arrows = ["↓" if lower_is_better(c, table.rows) else "↑" for c in table.columns]
    labels = "".join(f"<th>{html.escape(c.label)} {a}</th>" for c, a in zip(table.columns, arrows))
    return f"<thead><tr>{top}</tr><tr>{labels}</tr></thead>"


def _html_table(table: PaperTable, first: list[str], rows: list[list[str]]) -> str:
    body = "".join("<tr>" + "".join(f"<td style=\"white-space: nowrap\">{html.escape(cell)}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return (f"<table class=\"paper-table\" style=\"font-size: 0.85em\">{_header(table, first)}"
            f"<tbody>{body}</tbody></table>")


def paper_rows(key: str) -> list[list[str]]:
    """The cells of the paper's table ``key``: backbone, pre-training, then each column's number."""
    table = TABLES[key]
    rows = []
    sup = {}
    for row in table.rows:
        cells = [paper_value(table, row, c) for c in table.columns]
        if row[1] == "1K-SUP":
            sup[row[0]] = cells
        shown = []
        for column, value, i in zip(table.columns, cells, range(len(cells))):
            text = "–" if value is None else value
            base = sup.get(row[0], [None] * len(cells))[i]
            if column.label in table.diff_columns and row[1] == "1K-MIM" and value and base:
                text += f" ({float(value) - float(base):+.1f})".replace("-", "−")
            shown.append(text)
        rows.append([row[0], row[1]] + shown)
    return rows


def paper_table_html(key: str) -> str:
    """The paper's table ``key`` as an HTML table in its layout (grouped column headings)."""
    return _html_table(TABLES[key], ["backbone", "pre-train"], paper_rows(key))


def downstream_runs(preset: str, results_dir: str | Path) -> list[xr.Dataset]:
    """Every stored ``downstream`` result of ``preset`` (``[]`` when there are none)."""
    from mimstudy.results import load_dataset

    folder = Path(results_dir) / preset / DOWNSTREAM_NOTEBOOK
    return [load_dataset(p) for p in sorted(folder.glob("*.nc"))]


def _coord(ds: xr.Dataset, name: str, default=None):
    return ds[name].item() if name in ds.coords or name in ds else default


def _full_model(ds: xr.Dataset) -> bool:
    """Fine-tuned with every block, loaded as trained (not a Figure 5 / Section 3.2 variant)."""
    if int(_coord(ds, "keep_blocks", 0) or 0) != 0:
        return False
    order = str(_coord(ds, "block_order", "") or "")
    as_trained = ",".join(map(str, range(int(_coord(ds, "total_blocks", 0) or 0))))
    return order in ("", as_trained)


def our_cells(key: str, runs: list[xr.Dataset]) -> dict[tuple[str, str], dict[str, str]]:
    """``{(arch, objective): {column label: cell}}`` for table ``key`` from downstream results ``runs``:
    the mean over seeds (and the count) of the primary metric of the matching full-model runs."""
    table = TABLES[key]
    objectives = [o for o in dict.fromkeys(OBJECTIVE_OF.get(r[1]) for r in table.rows) if o]
    found: dict[tuple[str, str], dict[str, list[float]]] = {}
    for ds in runs:
        objective, task, arch = str(_coord(ds, "objective", "")), str(_coord(ds, "task", "")), str(_coord(ds, "arch", "?"))
        if objective not in objectives or not _full_model(ds) or str(_coord(ds, "protocol", "finetune")) != "finetune":
            continue
        for column in table.columns:
            metric = column.metric or ds.attrs.get("primary_metric")
            if column.analog and column.analog == task and metric and metric in ds:
                found.setdefault((arch, objective), {}).setdefault(column.label, []).extend(
                    np.asarray(ds[metric].values, dtype=float).ravel().tolist())
    cells = {}
    for key_, columns in found.items():
        cells[key_] = {label: f"{100 * np.nanmean(v):.1f} (n={len(v)})" for label, v in columns.items()}
    return cells


def our_rows(key: str, runs: list[xr.Dataset]) -> list[list[str]]:
    """Our table ``key`` in the paper's layout: a row per (architecture, objective) with results, or,
    without any, a row per objective the paper's rows map to, every cell ``not run``."""
    table = TABLES[key]
    cells = our_cells(key, runs)
    objectives = [o for o in dict.fromkeys(OBJECTIVE_OF.get(r[1]) for r in table.rows) if o]
    if not cells:
        return [["–", PAPER_LABELS[o]] + [NOT_RUN] * len(table.columns) for o in objectives]
    rows = []
    for arch in sorted({a for a, _ in cells}):
        for objective in objectives:
            mine = cells.get((arch, objective), {})
            rows.append([arch, PAPER_LABELS[objective]] + [mine.get(c.label, NOT_RUN) for c in table.columns])
    return rows


def our_table_html(key: str, preset: str, results_dir: str | Path) -> str:
    """Our analog of table ``key`` for ``preset``, in the paper's layout (``not run`` where we have nothing)."""
    return _html_table(TABLES[key], ["backbone", "pre-train"], our_rows(key, downstream_runs(preset, results_dir)))


def preset_scale(preset: str) -> str:
    """What a preset pre-trains, from its file: architectures, images, epochs, resolution."""
    from mimstudy.config import PretrainConfig
    from mimstudy.study.runner import plan

    configs = [s.config for s in plan(preset) if isinstance(s.config, PretrainConfig)]
    if not configs:
        return f"the `{preset}` preset pre-trains nothing"
    archs = ", ".join(f"`{a}`" for a in dict.fromkeys(c.arch for c in configs))
    sizes = "/".join(str(s) for s in sorted({c.train_size for c in configs}))
    epochs = "/".join(str(e) for e in sorted({c.epochs for c in configs}))
    data = ", ".join(dict.fromkeys("Fashion-MNIST" if c.dataset == "fashion_mnist" else f"image folders ({c.data_dir})"
                                   for c in configs))
    res = "/".join(str(r) for r in sorted({c.img_size for c in configs}))
    return (f"the `{preset}` preset pre-trains {archs} on {sizes} {data} images at {res} px for {epochs} epochs")


def differences_markdown(key: str, presets: list[str]) -> str:
    """What differs between the paper's table and ours: scale and data (from each preset) and the task analogs."""
    table = TABLES[key]
    backbones = ", ".join(dict.fromkeys(r[0] for r in table.rows if r[1] != "reference"))
    scales = "; ".join(preset_scale(p) for p in presets)
    return (f"**What differs.** The paper: {backbones} (tens to hundreds of millions of parameters) pre-trained "
            f"on ImageNet (1.28 M colour images at 192-224 px, hundreds of epochs), then fine-tuned on the real "
            f"benchmarks. Ours: {scales}; fine-tuning runs on small generated analogs of the benchmarks, so the "
            f"numbers are not comparable in size — only the direction of each MIM-versus-SUP difference is. "
            f"{table.differences}")

