"""The paper this package implements: its title, address and the one BibTeX entry every card and page cites."""

__all__ = ["ARXIV_URL", "CITATION", "TITLE"]

TITLE = "PatentLMM: Large Multimodal Model for Generating Descriptions for Patent Figures"
ARXIV_URL = "https://arxiv.org/abs/2501.15074"
CITATION = """@inproceedings{shukla2025patentlmm,
  title     = {PatentLMM: Large Multimodal Model for Generating Descriptions for Patent Figures},
  author    = {Shukla, Shreya and Sharma, Nakul and Gupta, Manish and Mishra, Anand},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2025}
}"""
