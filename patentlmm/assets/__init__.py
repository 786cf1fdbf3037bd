"""Files shipped inside the package: `FIGURES`, the 19 real USPTO figures of one patent with their descriptions."""

from pathlib import Path

__all__ = ["FIGURES"]

FIGURES = Path(__file__).resolve().parent / "figures"  # images `<id>.png`, `descriptions.json`, `SOURCE.md`
