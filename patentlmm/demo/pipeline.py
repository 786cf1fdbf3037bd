"""`patentlmm demo`: PatentLMM end to end, offline, on the bundled real USPTO figures (docs/demo.md)."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from patentlmm.assembly.tiny import TinyModelArguments
from patentlmm.assets import FIGURES
from patentlmm.extras import import_training
from patentlmm_common.fields import at_least, check_options, option
from processing.constants import DESCRIPTION_TYPES
from processing.ocr_engines import DEFAULT_OCR_ENGINE

if TYPE_CHECKING:  # the `train` extra, imported when the demo trains
    from trl import SFTConfig

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT_DIR",
    "DEMO_ENCODER",
    "DemoOptions",
    "held_out_ids",
    "prepare_root",
    "run_demo",
]

DEFAULT_OUTPUT_DIR = Path("outputs/demo")
DEFAULT_MODEL = DEFAULT_OUTPUT_DIR / "model"  # where a default run leaves its model (the web demo's default)
DEMO_MAX_NEW_TOKENS = 96  # the describe step's cap: the demo model's brief descriptions are short
# The demo's encoder: PatentMME's layout (LayoutLMv3, 384 px input) at a size a CPU trains in minutes; 32 px patches
# give 144 image positions instead of 576, which keeps the decoder's sequences (and the run) short.
DEMO_ENCODER = TinyModelArguments(
    vision_hidden_size=192, vision_layers=4, vision_heads=4, input_size=384, patch_size=32, max_ocr_tokens=128
)
# Its visual tokenizer for pretraining: the seeded random stand-in at f32 (6 levels), one visual token per 32-px patch.
DEMO_VISUAL_TOKENIZER = {"channel_multiplier": [1] * 6}
_FIGURE_NUMBER = re.compile(r"__(\d+)$")


@dataclass
class DemoOptions:
    """What `patentlmm demo` builds and how long it trains; every path is under `output_dir`. The fields without a
    flag are the recipe's fixed settings."""

    output_dir: Path = option(DEFAULT_OUTPUT_DIR, help="default: %(default)s")
    figures_dir: Path = option(FIGURES, flag="--figures", help="<id>.png + descriptions.json (default: bundled)")
    desc_type: str = option(DESCRIPTION_TYPES[0], flag="--type", choices=DESCRIPTION_TYPES, help="default: %(default)s")
    num_held_out: int = option(4, type=at_least(1), help="default: %(default)s")
    base_llm: str | None = option(None, help="decoder folder or Hub id (default: SmolLM2-135M-Instruct)")
    pretrain_steps: int = option(
        30, type=at_least(0), help="PatentMME pretraining steps of the random encoder, 0: none (default: %(default)s)"
    )
    stage1_steps: int = option(8, type=at_least(1), help="default: %(default)s")
    stage2_steps: int = option(16, type=at_least(1), help="default: %(default)s")
    batch_size: int = option(4, type=at_least(1), help="default: %(default)s")
    max_new_tokens: int | None = option(
        None, type=at_least(1), help=f"default: {DEMO_MAX_NEW_TOKENS} (offline demo), {DEFAULT_MAX_NEW_TOKENS} (--web)"
    )
    seed: int = option(0)
    pretrain_learning_rate: float = 1e-3
    stage1_learning_rate: float = 1e-3
    stage2_learning_rate: float = 5e-4
    lora_r: int = 16
    no_repeat_ngram_size: int = 4  # the repetition guard of the describe step (0: plain greedy, as the paper)

    def __post_init__(self):
        self.output_dir, self.figures_dir = Path(self.output_dir), Path(self.figures_dir)
        check_options(self)


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


def _build_dataset(root: Path) -> Path:
    """The dataset steps but download (`dataset all --skip download`) on the laid-out `root`, OCR with the default
    engine; the dataset's folder."""
    from dataset_builder.layout import DATASET_NAME
    from dataset_builder.options import AllOptions, BuildOptions, OcrOptions
    from dataset_builder.steps import run_all

    steps = AllOptions(skip=("download",), ocr=OcrOptions(engine=DEFAULT_OCR_ENGINE), build=BuildOptions(workers=1))
    if run_all(root, steps) != 0:
        raise SystemExit(f"patentlmm demo: building the dataset failed; see {root / 'reports'}.")
    return root / DATASET_NAME


def _decoder(options: DemoOptions) -> str:
    """`--base-llm`, else SmolLM2-135M-Instruct exported once to `output_dir/decoder/` (reused by later runs)."""
    if options.base_llm is not None:
        return options.base_llm
    from patentlmm.demo.smollm2 import export_smollm2

    folder = options.output_dir / "decoder"
    if not (folder / "model.safetensors").is_file():
        export_smollm2(folder)
    return str(folder)


def _training_args(options: DemoOptions, output_dir: Path, steps: int, learning_rate: float) -> SFTConfig:
    """One stage's `SFTConfig` of the demo's recipe; without a CUDA GPU in float32 on the CPU, as `patentlmm train`
    then runs (`patentlmm.training.arguments.CPU_TRAINING`; `ModelConfig`'s dtype is float32 already)."""
    from trl import SFTConfig

    from patentlmm.training.arguments import CPU_TRAINING

    device = {} if torch.cuda.is_available() else CPU_TRAINING
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=steps,
        learning_rate=learning_rate,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=1,
        max_length=512,  # the cap on a training sequence (prompt, image positions, description)
        gradient_checkpointing=False,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        seed=options.seed,
        **device,
    )


def _pretrain_encoder(options: DemoOptions, encoder: Path, dataset: Path) -> Path:
    """PatentMME pretraining of the random `encoder` on the training figures (`pretrain/`): MLM and MIM on random
    patches, as the demo's dataset has no layout elements; returns the pretrained `pretrain/encoder/`."""
    import_training("patentlmm demo")
    from transformers import TrainingArguments

    from modeling_patentlmm import PatentMMEVisualTokenizer
    from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN
    from patentlmm.pretraining import PretrainArguments, pretrain
    from patentlmm.training.arguments import CPU_TRAINING

    out = options.output_dir
    shape = {**TINY_VQGAN, **DEMO_VISUAL_TOKENIZER}
    tokenizer = PatentMMEVisualTokenizer.random(options.seed, shape, image_size=DEMO_ENCODER.input_size)
    args = PretrainArguments(
        model_name_or_path=str(encoder),
        input_size=DEMO_ENCODER.input_size,
        dataset_name=str(dataset),
        dataset_config=options.desc_type,
        visual_tokenizer=str(tokenizer.save_pretrained(out / "visual_tokenizer")),
        mim_strategy="random",
        pch_weight=0.0,
        tna_weight=0.0,
        loss_normalisation="masked",
        max_ocr_tokens=DEMO_ENCODER.max_ocr_tokens,
        mask_seed=options.seed,
    )
    training_args = TrainingArguments(
        output_dir=str(out / "pretrain"),
        max_steps=options.pretrain_steps,
        learning_rate=options.pretrain_learning_rate,
        per_device_train_batch_size=options.batch_size,
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        seed=options.seed,
        **({} if torch.cuda.is_available() else CPU_TRAINING),
    )
    return pretrain(args, training_args) / "encoder"


def _train_stages(options: DemoOptions, decoder: str, encoder: Path, dataset: Path, step) -> tuple[Path, Path]:
    """Stage 1 (projector + encoder, `stage1/`) then stage 2 (LoRA on the decoder too, merged: `model/`), each one
    `patentlmm.training.train` call."""
    training = import_training("patentlmm demo")
    from trl import ModelConfig, ScriptArguments

    data = ScriptArguments(dataset_name=str(dataset), dataset_config=options.desc_type)
    out = options.output_dir
    step("stage 1")
    stage1 = training.train(
        data,
        _training_args(options, out / "stage1", options.stage1_steps, options.stage1_learning_rate),
        ModelConfig(model_name_or_path=decoder),
        training.PatentLMMArguments(stage=1, vision_tower=str(encoder), train_vision_tower=True),
    )
    step("stage 2")
    lora = {"lora_r": options.lora_r, "lora_alpha": 2 * options.lora_r, "lora_dropout": 0.0}
    model = training.train(
        data,
        _training_args(options, out / DEFAULT_MODEL.name, options.stage2_steps, options.stage2_learning_rate),
        ModelConfig(model_name_or_path=str(stage1), **lora),
        training.PatentLMMArguments(stage=2, train_vision_tower=True),
    )
    return Path(stage1), Path(model)


def _describe(options: DemoOptions, model: Path, dataset: Path) -> list[dict]:
    """The held-out figures described by the trained `model` into a fresh `predictions.jsonl`; its rows."""
    from patentlmm.inference.describe import DescribeOptions, describe

    predictions = options.output_dir / "predictions.jsonl"
    predictions.unlink(missing_ok=True)  # the predictions of an earlier run came from another model
    describe_options = DescribeOptions(
        dataset=str(dataset),
        split="test",
        config=options.desc_type,
        desc_type=options.desc_type,
        output=predictions,
        max_new_tokens=options.max_new_tokens or DEMO_MAX_NEW_TOKENS,
        batch_size=options.batch_size,
        fidelity_ocr=DEFAULT_OCR_ENGINE,
        no_repeat_ngram_size=options.no_repeat_ngram_size,
    )
    return describe(str(model), describe_options, progress=True)


def _losses(model_dir: Path) -> list[float]:
    """The training losses logged in `model_dir/trainer_state.json`, in step order."""
    state = json.loads((model_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def _facts(options: DemoOptions, splits: dict, decoder: str, model: Path, seconds: dict[str, float]) -> dict:
    """The report's table of what was run."""
    return {
        "figures": f"{len(splits['train'])} for training, {len(splits['test'])} held out (test), from "
        f"{options.figures_dir}",
        "decoder": f"{decoder} (pretrained), LoRA r={options.lora_r} in stage 2",
        "encoder": f"LayoutLMv3 {DEMO_ENCODER.vision_layers} layers x {DEMO_ENCODER.vision_hidden_size}, "
        f"{DEMO_ENCODER.input_size} px / {DEMO_ENCODER.patch_size} px patches, random start, "
        + (f"pretrained {options.pretrain_steps} steps (MLM + MIM), " if options.pretrain_steps else "")
        + "trained",
        "training": f"stage 1 {options.stage1_steps} steps, stage 2 {options.stage2_steps} steps, "
        f"batch {options.batch_size}",
        "OCR": f"`{DEFAULT_OCR_ENGINE}` engine (dataset, model and fidelity metric)",
        "generation": f"greedy, at most {options.max_new_tokens or DEMO_MAX_NEW_TOKENS} new tokens, no repeated "
        f"{options.no_repeat_ngram_size}-gram",
        "model": str(model),
        "time": ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items()),
    }


def run_demo(options: DemoOptions) -> Path:
    """Runs the demo's steps (docs/demo.md: data, decoder, encoder, pretrain, stage 1, stage 2, describe, eval,
    report); returns the path of `report.html`."""
    from patentlmm.assembly.tiny import init_encoder
    from patentlmm.evaluation.evaluate import evaluate_predictions, format_table
    from patentlmm.evaluation.html_report import write_report

    out = options.output_dir
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        timings[name] = time.monotonic()
        print(f"\n== patentlmm demo: {name}", flush=True)

    step("data")
    splits = prepare_root(options.figures_dir, out / "data", options.num_held_out)
    dataset = _build_dataset(out / "data")
    step("decoder")
    decoder = _decoder(options)
    step("encoder")
    encoder = init_encoder(out / "encoder", TinyModelArguments(**{**vars(DEMO_ENCODER), "seed": options.seed}))
    if options.pretrain_steps:
        step("pretrain")
        encoder = _pretrain_encoder(options, encoder, dataset)
    stage1, model = _train_stages(options, decoder, encoder, dataset, step)

    step("describe")
    rows = _describe(options, model, dataset)

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
        losses={
            **({"PatentMME pretraining": _losses(out / "pretrain")} if options.pretrain_steps else {}),
            "stage 1": _losses(stage1),
            "stage 2": _losses(model),
        },
        facts=_facts(options, splits, decoder, model, seconds),
        ocr_engine=DEFAULT_OCR_ENGINE,
    )
    print(f"\nWrote {report}\n(open it in a browser; the model is in {model})")
    return report
