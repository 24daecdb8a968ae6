"""Section 4's downstream tasks: one fine-tuning path (backbone features + a task head) for every task.

``backbone``: a pre-trained or random backbone, its first k blocks, blocks loaded in a given order;
``puppets``: the pose benchmark's generator; ``coco_keypoints``: the COCO keypoints format and OKS AP;
``heads``: SimpleBaseline's deconvolution head and heatmaps; ``pose``: the pose objective;
``tasks``: the task registry; ``finetune``: the fine-tuning run.
"""
