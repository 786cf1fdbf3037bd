"""The paper this package implements: its title, address, BibTeX entry and Table 2's metrics (one source each)."""

from typing import NamedTuple

__all__ = ["ARXIV_URL", "CITATION", "TABLE2_METRICS", "TITLE", "Table2Metric"]

TITLE = "PatentLMM: Large Multimodal Model for Generating Descriptions for Patent Figures"
ARXIV_URL = "https://arxiv.org/abs/2501.15074"
CITATION = """@inproceedings{shukla2025patentlmm,
  title     = {PatentLMM: Large Multimodal Model for Generating Descriptions for Patent Figures},
  author    = {Shukla, Shreya and Sharma, Nakul and Gupta, Manish and Mishra, Anand},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2025}
}"""


class Table2Metric(NamedTuple):
    """One of the paper's Table 2 metrics: its key in `paper_metrics`' result, the table's column header, and its
    full name (model cards)."""

    key: str
    header: str
    name: str


# Table 2's seven columns, in the table's order: the one table of the metrics' keys and names.
TABLE2_METRICS = (
    Table2Metric("bleu2", "B-2", "BLEU-2"),
    Table2Metric("bleu4", "B-4", "BLEU-4"),
    Table2Metric("avg_bleu", "Avg.B", "Average BLEU"),
    Table2Metric("rouge1", "R-1", "ROUGE-1"),
    Table2Metric("rouge2", "R-2", "ROUGE-2"),
    Table2Metric("rougeL", "R-L", "ROUGE-L"),
    Table2Metric("meteor", "METEOR", "METEOR"),
)
