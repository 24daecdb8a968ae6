"""Stage 7, study: presets, the papermill runner and its command lines, the mask sweep, paper-scale probes."""
