"""Generating descriptions: the `describe` loop over files and datasets, with transformers or vLLM."""
