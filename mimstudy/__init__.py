"""mimstudy: a re-executable study of 'Revealing the Dark Secrets of Masked Image Modeling'.

The package is laid out as the pipeline runs; a stage imports only from earlier stages and from the
modules at this root that every stage reads (``config``, ``results``, ``provenance``, ``atomic``,
``distributed``):

1. ``data``        Fashion-MNIST, image folders, augmentation, batch sampling
2. ``models``      timm backbones by name, their geometry and cost, checkpoint files
3. ``objectives``  supervised, MoCo v3, SimMIM (and its masks), fine-tuning
4. ``training``    the engine, optimizers, the pre-training loop
5. ``probes``      attention distance / entropy / head KL, CKA, AvgDist, k-NN and linear probes
6. ``downstream``  fine-tuning on the paper's Section 4 tasks
7. ``study``       presets, the runner and command lines, the mask sweep, paper-scale probes
8. ``book``        verdicts, figures and page helpers for the Jupyter Book
"""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto (imported by dependencies) warns in kernels without ipywidgets; our progress bars are
# plain text and off inside notebooks, so the warning would only clutter executed notebooks and the book.
_warnings.filterwarnings("ignore", message="IProgress not found")
