"""The paper's claims as data: one registry that every chapter and the scorecard judge the same way.

Each entry is a :class:`mimstudy.book.claims.verdicts.Claim` of one family — :class:`~mimstudy.book.claims.probes.ProbeClaim`
(Section 3, Appendix A), :class:`~mimstudy.book.claims.sweep.SweepClaim` (Fig. 2a),
:class:`~mimstudy.book.claims.convnet.ConvNetClaim` (Appendix B),
:class:`~mimstudy.book.claims.geometric.GeometricClaim` (Section 4.2),
:class:`~mimstudy.book.claims.semantic.SemanticClaim` (Section 4.1),
:class:`~mimstudy.book.claims.combined.CombinedClaim` (Section 4.3, Appendix D) — or a plain ``Claim`` whose
experiment is not built. All are judged by ``claim.judge(PresetResults(preset))``.
"""

from __future__ import annotations

from mimstudy.book.claims.probes import (
    ALTERNATION_EFFECTS,
    FINETUNE_EFFECTS,
    MOCO_EFFECTS,
    ProbeClaim,
    cka_effects,
    diversity_effects,
    focus_effects,
    locality_effects,
)
from mimstudy.book.claims.combined import CombinedClaim
from mimstudy.book.claims.convnet import ConvNetClaim
from mimstudy.book.claims.geometric import GeometricClaim
from mimstudy.book.claims.sweep import SWEEP_TEXT, SweepClaim
from mimstudy.book.claims.semantic import SemanticClaim
from mimstudy.book.claims.verdicts import Claim

FIGURE_1 = ("a supervised model attends locally in its lower layers and globally in its higher layers; SimMIM keeps "
            "local heads in every layer")
SUP_MIM = ("supervised", "simmim")

CLAIMS: tuple[Claim, ...] = (
    ProbeClaim("vit-locality", "3.1.1 · Fig. 1", "Local or global attention (ViT)", f"ViT: {FIGURE_1}.",
               "attention_distance", arch="vit", roles=SUP_MIM, effects=locality_effects()),
    ProbeClaim("vit-moco", "3.1.1–3.2 · Figs. 1, 3, 4, 6", "MoCo v3: like supervised in attention, like SimMIM in CKA",
               "MoCo v3 attends like the supervised model (Figs. 1, 3, 4) but its layers are as alike as SimMIM's "
               "(Fig. 6).", "attention_distance", arch="vit", roles=("moco", *SUP_MIM), effects=MOCO_EFFECTS),
    SweepClaim("mask-sweep", "3.1.1 · Fig. 2(a)", "Masking, AvgDist and locality", SWEEP_TEXT, "mask_sweep"),
    ProbeClaim("vit-focus", "3.1.2 · Fig. 3", "Focused or broad attention (ViT)",
               "ViT: supervised heads attend more broadly with depth; SimMIM heads stay diverse (some focused, some "
               "broad) in every layer.", "attention_entropy", arch="vit", roles=SUP_MIM, effects=focus_effects()),
    ProbeClaim("vit-diversity", "3.1.3 · Fig. 4", "Diversity on attention heads (ViT)",
               "ViT: the heads of a supervised model lose their diversity in the last layers; SimMIM's heads keep "
               "attending to different tokens.", "head_diversity", arch="vit", roles=SUP_MIM,
               effects=diversity_effects()),
    GeometricClaim("layer-drop", "3.1.3 · Fig. 5", "Dropping the last layers helps the supervised model",
                    "Dropping the last layers of a supervised model improves pose estimation; the MIM model does not "
                    "benefit.", "geometric_tasks", kind="drop"),
    ProbeClaim("vit-cka", "3.2 · Fig. 6", "Representation structure (ViT)",
               "ViT: SimMIM's layers have almost the same representations (CKA [0.9, 1.0]); supervised layers differ.",
               "cka", arch="vit", roles=SUP_MIM, effects=cka_effects()),
    GeometricClaim("layer-shuffle", "3.2 · text", "Randomly sampled layers hurt supervised more",
                    "Loading randomly sampled pre-trained layers costs a supervised model more than a MIM model "
                    "downstream.", "geometric_tasks", kind="shuffle"),
    SemanticClaim("semantic-cog", "4.1 · Tables 1, 5", "The MIM advantage grows with the concept gap",
                  "MIM's advantage over supervised pre-training grows as the concepts of a classification task move "
                  "away from the pre-training classes (CoG L1 → L5).", "semantic", kind="cog"),
    SemanticClaim("semantic-covered", "4.1 · Tables 1, 4", "Supervised wins on the classes it covers",
                  "On a task whose classes supervised pre-training covers (CIFAR for ImageNet), supervised "
                  "pre-training fine-tunes better than MIM.", "semantic", kind="covered"),
    SemanticClaim("semantic-fine", "4.1 · Tables 1, 4", "MIM wins on fine-grained classes",
                  "On fine-grained classification (Aircraft, Birdsnap, iNat18), MIM fine-tunes better than "
                  "supervised pre-training.", "semantic", kind="fine"),
    GeometricClaim("geometric", "4.2 · Table 2", "Geometric and motion tasks",
                    "MIM beats supervised pre-training by large margins on pose estimation, depth estimation and "
                    "tracking.",
                    "geometric_tasks", kind="table2"),
    CombinedClaim("detection", "4.3 · Table 6", "Combined task: object detection",
                  "On COCO detection (Mask R-CNN) MIM beats supervised pre-training in box AP.", "combined_tasks",
                  kind="detection"),
    CombinedClaim("detection-losses", "4.3 · Fig. 7", "Detection: MIM localises, supervised classifies",
                  "Fine-tuning a detector, MIM's localisation loss ends lower than the supervised model's and its "
                  "classification loss ends higher.", "combined_tasks", kind="losses"),
    ProbeClaim("swin-locality", "A.1 · Figs. 2(b), 8", "Local or global attention (SwinV2)", f"SwinV2: {FIGURE_1}.",
               "swin", arch="swinv2", roles=SUP_MIM, effects=locality_effects()),
    ProbeClaim("swin-alternation", "A.1 · Fig. 8", "Consecutive Swin blocks alternate",
               "SwinV2: the mean attention distances of two consecutive layers are one high and one low (shifted "
               "windows).", "swin", arch="swinv2", roles=SUP_MIM, effects=ALTERNATION_EFFECTS),
    ProbeClaim("swin-focus", "A.1 · Fig. 9", "Focused or broad attention (SwinV2)",
               "SwinV2: supervised heads broaden with depth; SimMIM heads stay diverse.", "swin", arch="swinv2",
               roles=SUP_MIM, effects=focus_effects()),
    ProbeClaim("swin-diversity", "A.1 · Fig. 10", "Diversity on attention heads (SwinV2)",
               "SwinV2: supervised head diversity shrinks with depth; SimMIM's does not.", "swin", arch="swinv2",
               roles=SUP_MIM, effects=diversity_effects()),
    ProbeClaim("swin-cka", "A.2 · Fig. 11", "Representation structure (SwinV2)",
               "SwinV2: SimMIM's layers share one representation structure; supervised layers differ.", "swin",
               arch="swinv2", roles=SUP_MIM, effects=cka_effects()),
    ProbeClaim("swin-finetune", "A.1–A.2 · Figs. 8–11 (c)", "SimMIM → fine-tune keeps some of SimMIM",
               "SwinV2: the SimMIM model fine-tuned with labels behaves like the supervised one but keeps more diverse "
               "heads in its last layers and layers that differ less.", "swin", arch="swinv2",
               roles=("finetune", "supervised"), effects=FINETUNE_EFFECTS),
    ConvNetClaim("replknet-table", "B.1 · Table 3", "MIM helps large-kernel ConvNets",
                 "MIM lets RepLKNet train without re-parametrisation to on-par accuracy (pose AP is not judged yet).",
                 "convnet", variable="val_accuracy", roles=("ft", "sup_rep", "sup")),
    ConvNetClaim("replknet-locality", "B.2 · Fig. 12", "Large kernels: local under MIM",
                 "With re-parameterisation the supervised ConvNet's kernels are the most local; SimMIM without it "
                 "brings locality back part of the way.", "convnet", variable="kernel_distance",
                 roles=("sup", "sup_rep", "simmim")),
    ConvNetClaim("replknet-focus", "B.2 · Fig. 13", "Large kernels: focused and broad under MIM",
                 "Re-parameterised supervised kernels are focused low and broad high; SimMIM's are diverse in every "
                 "layer.", "convnet", variable="kernel_entropy", roles=("sup_rep", "simmim")),
    ConvNetClaim("replknet-diversity", "B.2 · Fig. 14", "Large kernels: diverse under MIM",
                 "SimMIM's kernels differ from each other more than the re-parameterised supervised model's, "
                 "especially in deeper layers.", "convnet", variable="kernel_kl", roles=("sup_rep", "simmim")),
    CombinedClaim("segmentation", "D · Table 6", "Combined task: semantic segmentation",
                  "On ADE-20K semantic segmentation (UperNet) supervised pre-training slightly beats MIM (the "
                  "Mask2Former comparison is not built).", "combined_tasks", kind="segmentation"),
)  # fmt: skip


def claims_on_page(page: str) -> list[Claim]:
    return [c for c in CLAIMS if c.page == page]


def claim(key: str) -> Claim:
    for c in CLAIMS:
        if c.key == key:
            return c
    raise KeyError(f"no claim {key!r}; claims: {[c.key for c in CLAIMS]}")
