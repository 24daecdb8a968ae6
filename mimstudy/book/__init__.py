"""Stage 8, book: verdicts, figures and the helpers the Jupyter Book's pages call."""
