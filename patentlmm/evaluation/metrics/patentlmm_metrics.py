"""The paper's seven description metrics (Table 2), offline, also as an `evaluate` module (docs/evaluation.md)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import datasets
import evaluate
import nltk
import sacrebleu
from nltk.translate.meteor_score import meteor_score
from rouge_score import rouge_scorer

from patentlmm_common.paper import CITATION, TABLE2_METRICS, Table2Metric

__all__ = ["LEXNAMES", "TABLE2_METRICS", "PatentLMMMetrics", "Table2Metric", "paper_metrics", "prepare_wordnet"]


DEBIAN_WORDNET = Path("/usr/share/wordnet")
# WordNet 3.0's 45 lexicographer files in number order (`man 5 lexnames`); the category is 1 noun, 2 verb, 3 adjective,
# 4 adverb and follows from the prefix.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_LEXNAME_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def _default_data_dir() -> Path:
    return Path(os.environ.get("PATENTLMM_NLTK_DATA") or Path.home() / ".cache" / "patentlmm" / "nltk_data")


def prepare_wordnet(data_dir: str | os.PathLike | None = None, source: str | os.PathLike = DEBIAN_WORDNET) -> Path:
    """Copies Debian's WordNet 3.0 into `<data_dir>/corpora/wordnet/` (once), adds `lexnames`, and puts `data_dir`
    first on NLTK's search path. Returns `data_dir`."""
    data_dir = Path(data_dir) if data_dir is not None else _default_data_dir()
    target = data_dir / "corpora" / "wordnet"
    if not (target / "lexnames").is_file():
        source = Path(source)
        if not (source / "data.noun").is_file():
            raise FileNotFoundError(
                f"WordNet 3.0 is not in {source}: `apt-get install -y wordnet-base wordnet-sense-index` provides it "
                "(METEOR needs it)."
            )
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file():
                shutil.copyfile(path, target / path.name)  # copies, never links (NLTK >= 3.10 rejects links)
        lines = [f"{i:02d}\t{name}\t{_LEXNAME_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES)]
        (target / "lexnames").write_text("".join(lines), encoding="utf-8")
    if str(data_dir) not in nltk.data.path:
        nltk.data.path.insert(0, str(data_dir))
    return data_dir


def _bleu(predictions: Sequence[str], references: Sequence[str], order: int) -> float:
    scorer = sacrebleu.metrics.BLEU(max_ngram_order=order, tokenize="13a", smooth_method="none")
    return scorer.corpus_score(list(predictions), [list(references)]).score


def paper_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Table 2's seven scores (percent; the keys of `TABLE2_METRICS`) plus `bleu1`, `bleu3` of `predictions` against
    one reference each; each implementation and its settings: docs/evaluation.md."""
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"Need as many references as predictions (> 0), got {len(predictions)} / {len(references)}.")
    bleu = [_bleu(predictions, references, order) for order in (1, 2, 3, 4)]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rouge = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
    prepare_wordnet()

    def tokens(text: str) -> list[str]:
        return nltk.word_tokenize(text, preserve_line=True)

    meteor = [meteor_score([tokens(r)], tokens(p)) for p, r in zip(predictions, references)]
    count = len(predictions)
    return {
        "bleu2": bleu[1],
        "bleu4": bleu[3],
        "avg_bleu": sum(bleu) / 4,
        "rouge1": 100 * sum(s["rouge1"].fmeasure for s in rouge) / count,
        "rouge2": 100 * sum(s["rouge2"].fmeasure for s in rouge) / count,
        "rougeL": 100 * sum(s["rougeL"].fmeasure for s in rouge) / count,
        "meteor": 100 * sum(meteor) / count,
        "bleu1": bleu[0],
        "bleu3": bleu[2],
    }


class PatentLMMMetrics(evaluate.Metric):
    """`evaluate` wrapper of `paper_metrics`: `compute(predictions=[...], references=[...])`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="BLEU-2, BLEU-4, average BLEU, ROUGE-1/2/L and METEOR as in PatentLMM's Table 2 (percent).",
            citation=CITATION,
            inputs_description="predictions: list of str; references: list of str (one per prediction).",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _download_and_prepare(self, dl_manager) -> None:
        prepare_wordnet()

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return paper_metrics(predictions, references)
