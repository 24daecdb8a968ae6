"""``load_backbone``: a timm model holding a released checkpoint's encoder, checked key by key."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn as nn

from mimstudy.models.checkpoints.layouts import LAYOUTS, check_model, check_model_name, detect_layout, extract
from mimstudy.models.checkpoints.reading import CheckpointError, read_checkpoint
from mimstudy.models.backbones import STUDY_BACKBONES, ModelConfigError

DERIVED_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask")  # rebuilt by timm


@dataclass
class LoadReport:
    """What :func:`load_backbone` did with a checkpoint's keys (names after conversion to timm's)."""

    layout: str
    source: str
    model_kwargs: dict
    loaded: int = 0  # tensors copied into the model
    missing_keys: list[str] = field(default_factory=list)  # model keys the file lacks (classifier only)
    unexpected_keys: list[str] = field(default_factory=list)  # file keys the model has no place for
    dropped_keys: list[str] = field(default_factory=list)  # file entries left out on purpose (paths)
    checked_buffers: list[str] = field(default_factory=list)  # index/coords/mask buffers equal to timm's
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"{self.source}: layout {self.layout!r}, {self.loaded} tensors loaded",
            f"  missing ({len(self.missing_keys)}): {self.missing_keys[:8]}",
            f"  unexpected ({len(self.unexpected_keys)}): {self.unexpected_keys[:8]}",
            f"  dropped ({len(self.dropped_keys)}): {self.dropped_keys[:8]}",
        ]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _resolve_name(model_name: str, model_kwargs: dict) -> tuple[str, dict]:
    if model_name in STUDY_BACKBONES:
        spec = STUDY_BACKBONES[model_name]
        return spec.timm_name, {**spec.kwargs, **model_kwargs}
    if not timm.is_model(model_name):
        raise ModelConfigError(
            f"unknown model {model_name!r}: use a timm model name (see timm.list_models()) or one of "
            f"{sorted(STUDY_BACKBONES)}"
        )
    return model_name, dict(model_kwargs)


def _from_hub(model_name: str, timm_name: str, kwargs: dict) -> tuple[nn.Module, LoadReport]:
    if model_name in STUDY_BACKBONES:
        raise CheckpointError(
            f"{model_name!r} is a study backbone with no pretrained weights: pass checkpoint_path=..."
        )
    if not timm.is_model_pretrained(timm_name):
        raise CheckpointError(f"timm has no pretrained weights for {model_name!r}: pass checkpoint_path=...")
    kwargs = {"num_classes": 0, **kwargs}
    try:
        model = timm.create_model(timm_name, pretrained=True, **kwargs)
    except Exception as err:  # hub errors have no common base class (OSError, httpx, huggingface_hub)
        raise CheckpointError(
            f"could not fetch timm's pretrained weights for {model_name!r} ({type(err).__name__}: {err}). "
            "Without network access, download the checkpoint file yourself and pass checkpoint_path=... "
            f"(layout='auto' reads any of {list(LAYOUTS)})"
        ) from err
    cfg = model.pretrained_cfg
    source = f"timm pretrained weights {cfg.get('hf_hub_id') or cfg.get('url') or timm_name}"
    report = LoadReport("timm", source, kwargs, loaded=len(model.state_dict()))
    return model.eval(), report


def _build(timm_name: str, kwargs: dict) -> nn.Module:
    try:
        return timm.create_model(timm_name, pretrained=False, **kwargs)
    except (TypeError, AssertionError, ValueError) as err:
        raise ModelConfigError(f"cannot build {timm_name!r} with {kwargs}: {err}") from err


def _check_derived_buffers(sd: dict, model: nn.Module, report: LoadReport, prefix: str) -> dict:
    """Drop the index/coordinate/mask buffers official code saved, after checking they match timm's.

    timm rebuilds them from the model's options. A ``relative_position_index`` that differs (same
    shape) means the bias table would be read in another token order: that is an error. A differing
    ``relative_coords_table`` or ``attn_mask`` comes from options such as ``pretrained_window_size``:
    a warning.
    """
    ours = dict(model.named_buffers())
    kept, wrong_index = {}, []
    for key, value in sd.items():
        name = key.rsplit(".", 1)[-1]
        if name not in DERIVED_BUFFERS:
            kept[key] = value
            continue
        report.dropped_keys.append(prefix + key)
        mine = ours.get(key)
        if mine is None or mine.shape != value.shape:
            continue  # rebuilt for the model's own window/grid size
        if name == "relative_position_index":
            if not torch.equal(mine, value.to(mine.dtype)):
                wrong_index.append(key)
                continue
        elif not torch.allclose(mine.float(), value.float(), atol=1e-5):
            msg = (f"{key} in the file differs from the one timm builds: check the model options "
                   "(for Swin V2: window_size, pretrained_window_sizes)")
            report.notes.append(msg)
            warnings.warn(msg, stacklevel=3)
            continue
        report.checked_buffers.append(key)
    if wrong_index:
        raise CheckpointError(
            f"relative_position_index in the file differs from timm's for {wrong_index[:3]}: the file's bias "
            f"tables use another token order than the timm model (layout {report.layout!r})"
        )
    return kept


def _timm_filter(sd: dict, model: nn.Module) -> dict:
    """Apply the model's own ``checkpoint_filter_fn`` (renames, pos-embed/bias-table resizing)."""
    fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if fn is None:
        return sd
    try:
        return fn(sd, model)
    except Exception as err:
        raise CheckpointError(f"timm's checkpoint_filter_fn for {type(model).__name__} failed: {err}") from err


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n + "." for n in names)


def _fit_classifier(sd: dict, model: nn.Module, report: LoadReport, prefix: str) -> dict:
    """Leave out classifier weights the model has no place or shape for (it is headless or re-sized)."""
    heads, ours = _classifier_prefixes(model), model.state_dict()
    unused = [k for k, v in sd.items() if k.startswith(heads) and (k not in ours or ours[k].shape != v.shape)]
    if unused:
        report.dropped_keys += [prefix + k for k in unused]
        report.notes.append(
            f"classifier weights {unused} not loaded: the model's classifier is "
            f"{'absent (num_classes=0)' if not any(k in ours for k in unused) else 'of another size'}"
        )
    return {k: v for k, v in sd.items() if k not in unused}


def _check_shapes(sd: dict, model: nn.Module, model_name: str, layout: str) -> None:
    ours = model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)}, model {tuple(ours[k].shape)}"
             for k, v in sd.items() if k in ours and ours[k].shape != v.shape]
    if wrong:
        raise CheckpointError(
            f"{len(wrong)} tensors of the {layout!r} file do not fit {model_name!r}: {wrong[:5]}. The model "
            "options do not match the checkpoint's architecture: check model_name and model_kwargs "
            "(embed_dim, depth(s), num_heads, patch_size, window_size, ...)"
        )


def load_backbone(
    model_name: str,
    checkpoint_path: str | Path | None = None,
    layout: str = "auto",
    strict: bool = False,
    allow_pickle: bool = False,
    **model_kwargs,
) -> tuple[nn.Module, LoadReport]:
    """Build timm model ``model_name`` and load a released checkpoint's encoder into it.

    ``checkpoint_path=None`` fetches timm's own pretrained weights (needs network access or a warm
    hub cache). Otherwise the file is read tensors-only (``allow_pickle=True`` opts in to full
    unpickling, for trusted files only), its ``layout`` is detected from the keys (``"auto"``) or
    taken as given (one of :data:`~mimstudy.models.checkpoints.LAYOUTS`), and its encoder weights are
    mapped onto the model. ``model_kwargs`` go to ``timm.create_model``, after options read off the
    keys (e.g. SimMIM's shared relative position bias); ``num_classes`` defaults to 0 (headless).

    Every encoder weight the model has must come from the file, else :class:`CheckpointError`
    says which and why. Only classifier weights may be missing (they stay freshly initialised).
    File keys with no place in the model are listed and warned about; ``strict=True`` makes both of
    those errors too. Returns ``(model in eval mode, LoadReport)``.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"unknown checkpoint layout {layout!r}: use 'auto' or one of {list(LAYOUTS)}")
    timm_name, kwargs = _resolve_name(model_name, model_kwargs)
    if checkpoint_path is None:
        if layout not in ("auto", "timm"):
            raise ValueError(f"layout {layout!r} describes a checkpoint file: pass checkpoint_path=...")
        return _from_hub(model_name, timm_name, kwargs)

    ckpt = read_checkpoint(checkpoint_path, allow_pickle=allow_pickle)
    layout = detect_layout(ckpt) if layout == "auto" else layout
    extracted = extract(ckpt, layout)
    check_model_name(timm_name, layout, extracted, model_name)
    kwargs = {"num_classes": 0, **extracted.model_kwargs, **kwargs}
    model = _build(timm_name, kwargs)
    check_model(model, layout, extracted, model_name)

    report = LoadReport(layout, str(checkpoint_path), kwargs, dropped_keys=list(extracted.dropped),
                        notes=list(extracted.notes))
    sd = _check_derived_buffers(extracted.state_dict, model, report, extracted.prefix)
    sd = _timm_filter(sd, model)
    sd = _fit_classifier(sd, model, report, extracted.prefix)
    _check_shapes(sd, model, model_name, layout)
    result = model.load_state_dict(sd, strict=False)
    report.missing_keys, report.unexpected_keys = list(result.missing_keys), list(result.unexpected_keys)
    report.loaded = len(sd) - len(report.unexpected_keys)

    heads = _classifier_prefixes(model)
    encoder_missing = [k for k in report.missing_keys if strict or not k.startswith(heads)]
    if encoder_missing:
        raise CheckpointError(
            f"{checkpoint_path!s} (layout {layout!r}) lacks {len(encoder_missing)} weights that {model_name!r} "
            f"needs: {encoder_missing[:8]}. Either the file is not a {layout!r} checkpoint of this "
            "architecture (pass layout=... explicitly) or the model options differ from the checkpoint's "
            f"(model_kwargs used: {kwargs}). Only classifier weights may be missing, and only with strict=False"
        )
    if report.unexpected_keys:
        msg = (f"{len(report.unexpected_keys)} weights in {checkpoint_path!s} (layout {layout!r}) have no "
               f"place in {model_name!r} and were ignored: {report.unexpected_keys[:8]}")
        if strict:
            raise CheckpointError(msg + " (strict=True)")
        warnings.warn(msg, stacklevel=2)
    return model.eval(), report
