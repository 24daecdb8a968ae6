"""Stage 2, models: the study's timm backbones, their geometry and cost, and checkpoint files."""
