"""The project's `evaluate` metric module (`patentlmm_metrics.py`), loadable offline by path."""
