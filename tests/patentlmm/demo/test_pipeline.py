"""`patentlmm demo`: the offline end-to-end run (real Tesseract, the real SmolLM2 decoder, both training stages,
descriptions, scores, HTML report) with one training step per stage, and its pure parts."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from safetensors import safe_open

from patentlmm.demo.pipeline import DemoOptions, held_out_ids, prepare_root

IDS = [f"US20250204297A1__{n}" for n in range(1, 20)]
ENCODER_TENSOR = "encoder.layer.0.attention.self.query.weight"  # LayoutLMv3Model's name for it
DECODER_TENSOR = "layers.0.self_attn.q_proj.weight"


def test_held_out_figures_are_spread_evenly_by_figure_number():
    shuffled = IDS[::-1]  # the order given does not matter: figure numbers do (9 < 10 < 19, not "19" < "9")
    assert held_out_ids(shuffled, 4) == [f"US20250204297A1__{n}" for n in (3, 8, 12, 17)]
    assert held_out_ids(IDS, 1) == ["US20250204297A1__10"]
    for bad in (0, 19):
        with pytest.raises(ValueError, match="num_held_out must be between 1 and 18"):
            held_out_ids(IDS, bad)


def test_prepare_root_lays_out_the_official_dataset_folder(tmp_path, figures):
    splits = prepare_root(DemoOptions().figures_dir, tmp_path, 4)
    for name, ids in splits.items():
        assert (tmp_path / "splits" / f"{name}.txt").read_text().split() == ids
    train, test = splits["train"], splits["test"]
    assert sorted(train + test) == sorted(figures) and not set(train) & set(test) and splits["val"] == []
    entries = json.loads((tmp_path / "PatentDesc-355k.json").read_text())
    assert entries[test[0]]["brief_description"] == figures[test[0]]["brief_description"]
    assert (tmp_path / "images" / f"{test[0]}.png").read_bytes() == figures[test[0]]["path"].read_bytes()


def test_prepare_root_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="descriptions.json not found"):
        prepare_root(tmp_path, tmp_path / "root", 4)
    (tmp_path / "descriptions.json").write_text(json.dumps({"US1__1": {}, "US1__2": {}}))
    with pytest.raises(FileNotFoundError, match=r"lacks the image\(s\) of \['US1__1', 'US1__2'\]"):
        prepare_root(tmp_path, tmp_path / "root", 1)


def test_options_are_checked():
    with pytest.raises(ValueError, match="desc_type must be one of"):
        DemoOptions(desc_type="short")
    with pytest.raises(ValueError, match="stage2_steps must be at least 1, got 0"):
        DemoOptions(stage2_steps=0)


@pytest.mark.parametrize("option", ["--num-held-out", "--stage1-steps", "--stage2-steps", "--batch-size",
                                    "--max-new-tokens", "--port"])  # fmt: skip
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_counts_out_of_range_are_one_line_argparse_errors(option, value, capsys):
    from patentlmm.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: {value} is not an integer >= 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One reduced `patentlmm demo` run through the console command (two pretraining steps, one step per stage, 4 new
    tokens)."""
    out = tmp_path_factory.mktemp("demo")
    command = [sys.executable, "-m", "patentlmm.cli", "demo", "--output-dir", str(out), "--pretrain-steps", "2",
               "--stage1-steps", "1", "--stage2-steps", "1", "--batch-size", "2", "--max-new-tokens", "4"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def _steps(folder) -> str:
    """The logged steps of a training stage (loss, grad_norm), to say why a tensor did not move."""
    state = json.loads((folder / "trainer_state.json").read_text())
    steps = [(e["step"], e.get("loss"), e.get("grad_norm")) for e in state["log_history"] if "loss" in e]
    return (
        f"{folder.name} logged (step, loss, grad_norm) = {steps}. A non-finite grad_norm means clip_grad_norm_ scaled "
        "every finite gradient by 0 (max_grad_norm 1.0) and AdamW moved nothing; one of 1e5 or more means one tensor's "
        "gradient dwarfs the rest and clipping starved them (a random encoder's all-zero visual CLS embedding did: "
        "docs/model.md, 'A random encoder'); a moderate one that the tensor still did not move means its gradient "
        "was cut off (frozen, detached, or not in the optimizer)."
    )


def _tensor(folder, name: str):
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        return handle.get_tensor(name)


@pytest.mark.slow
def test_demo_report_contains_every_held_out_figure(demo_dir):
    held_out = (demo_dir / "data" / "splits" / "test.txt").read_text().split()
    assert len(held_out) == 4
    rows = [json.loads(line) for line in (demo_dir / "predictions.jsonl").read_text().splitlines()]
    assert sorted(row["image_id"] for row in rows) == sorted(held_out)
    assert all(row["type"] == "brief" and row["reference"] for row in rows)
    report = (demo_dir / "report.html").read_text()
    for image_id in held_out:
        assert f'<div class="figure" id="{image_id}">' in report
    text = re.sub(r"<[^>]+>", "", report)  # without the numerals' highlight spans ("<span ...>1</span>.")
    for row in rows:  # the prediction and the reference of each figure are in the report (HTML-escaped)
        assert row["prediction"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:10] in text
    metrics = json.loads((demo_dir / "metrics.json").read_text())["brief"]
    assert metrics["samples_with_reference"] == 4 and set(metrics["metrics"]) >= {"bleu4", "rougeL", "meteor"}


@pytest.mark.slow
def test_demo_trains_the_random_encoder_in_both_stages_and_the_decoder_in_stage_2(demo_dir):
    encoder = _tensor(demo_dir / "encoder", ENCODER_TENSOR)
    stage1 = _tensor(demo_dir / "stage1", f"model.vision_tower.{ENCODER_TENSOR}")
    final = _tensor(demo_dir / "model", f"model.vision_tower.{ENCODER_TENSOR}")
    assert not encoder.equal(stage1), f"stage 1 left the encoder bitwise unchanged. {_steps(demo_dir / 'stage1')}"
    assert not stage1.equal(final), f"stage 2 left the encoder bitwise unchanged. {_steps(demo_dir / 'model')}"
    decoder = _tensor(demo_dir / "decoder", f"model.{DECODER_TENSOR}")  # the exported SmolLM2-135M-Instruct
    assert decoder.shape == (576, 576)
    assert decoder.equal(_tensor(demo_dir / "stage1", f"model.language_model.{DECODER_TENSOR}"))
    assert not decoder.equal(_tensor(demo_dir / "model", f"model.language_model.{DECODER_TENSOR}"))  # LoRA merged
    config = json.loads((demo_dir / "model" / "config.json").read_text())
    assert config["freeze_vision_tower"] is False and config["text_config"]["num_hidden_layers"] == 30
    decoder_config = json.loads((demo_dir / "decoder" / "config.json").read_text())
    assert "quantization_config" not in decoder_config  # a plain float32 folder, not a GGUF one


@pytest.mark.slow
def test_demo_pretrains_the_random_encoder_before_stage_1(demo_dir):
    pretrained = _tensor(demo_dir / "pretrain" / "encoder", ENCODER_TENSOR)
    assert not pretrained.equal(_tensor(demo_dir / "encoder", ENCODER_TENSOR)), _steps(demo_dir / "pretrain")
    losses = [e for e in json.loads((demo_dir / "pretrain" / "trainer_state.json").read_text())["log_history"]
              if "loss" in e]  # fmt: skip
    assert [e["step"] for e in losses] == [1, 2] and all("mim_loss" in e for e in losses)  # random MIM: always
    assert "<h4>PatentMME pretraining</h4>" in (demo_dir / "report.html").read_text()


@pytest.mark.slow
def test_demo_reads_its_figures_with_the_drawing_engine(demo_dir):
    """The dataset, the model's processor and the fidelity metric all use the `drawing` OCR engine."""
    from processing.ocr_engines import load_ocr_engine

    key = load_ocr_engine("drawing").key
    assert [p.name for p in (demo_dir / "data" / "ocr").iterdir() if p.is_dir()] == [key]
    processor_config = json.loads((demo_dir / "model" / "processor_config.json").read_text())
    assert processor_config["ocr_engine"]["engine"] == "drawing"
    rows = [json.loads(line) for line in (demo_dir / "predictions.jsonl").read_text().splitlines()]
    assert {row["fidelity_ocr"] for row in rows} == {key}
    assert "Read by the <code>drawing</code> engine" in (demo_dir / "report.html").read_text()
