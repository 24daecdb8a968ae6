"""Section 4's downstream tasks: one fine-tuning path (backbone features + a task head) for every task.

Modules by role:

* the run: ``transfer`` (train every seed of a run by its protocol, score it, store it), ``tasks`` (the table of
  tasks: task module + generated analog, and the one data-loading path);
* task modules, one interface each (``load``, ``objective``, ``evaluate``, ``trivial``, ``examples``;
  :mod:`~mimstudy.downstream.tasks`): ``pose``, ``depth``, ``tracking``,
  ``classification``, ``segmentation``, ``detection``;
* file formats and their metrics: ``coco_keypoints`` (OKS AP), ``coco_instances`` (box / mask AP),
  ``nyu_depth`` (RMSE, AbsRel, delta1), ``got10k`` (AO, SR, AUC), ``imagefolder``, ``ade20k``
  (mIoU), ``images`` (image files read with the backbone's channels), ``split`` (a split as a
  ``Dataset``: streamed from disk or held in memory, and its batches);
* generators of our analogs: ``garments`` (the garment sprites and photos they share), ``puppets``
  (Puppet-Pose), ``garment_world`` (GarmentWorld-Depth), ``garment_track`` (GarmentTrack),
  ``garment_scenes`` (GarmentScenes, for segmentation and detection), ``concepts`` (the CoG-lite,
  K12-lite and iNat-lite concept sets);
* model parts: ``backbone`` (a pre-trained or random backbone, its first k blocks, blocks loaded in
  a given order), ``inputs`` (the pre-training per-channel pixel statistics), ``heads`` (deconvolution heads,
  heatmaps), ``pyramid`` (a simple feature pyramid), ``upernet`` (UPerNet-lite), ``augment`` (the
  training augmentations the tasks share).
"""
