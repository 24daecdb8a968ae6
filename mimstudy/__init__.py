"""mimstudy: a re-executable study of 'Revealing the Dark Secrets of Masked Image Modeling'."""

__version__ = "0.1.0"
