"""mimstudy: a re-executable study of 'Revealing the Dark Secrets of Masked Image Modeling'."""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto (imported by dependencies) warns in kernels without ipywidgets; our progress bars are
# plain text and off inside notebooks, so the warning would only clutter executed notebooks and the book.
_warnings.filterwarnings("ignore", message="IProgress not found")
