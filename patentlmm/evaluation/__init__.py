"""Scoring descriptions: the paper's metrics, reference-numeral fidelity and the HTML report."""
