"""PatentLMM under vLLM (issue 15): the protocol vLLM's Transformers backend calls, checked here with transformers;
then vLLM's CPU build itself (its own virtualenv, `$PATENTLMM_VLLM_PYTHON`): `describe --backend vllm` writes the
rows `--backend transformers` writes, and vLLM's OpenAI-compatible server answers a chat request carrying a figure
with the prompt ids and greedy tokens of `generate`.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import platform
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import FIGURES, REPO, VLLM_ENV, python_from_env
from helpers.citing import make_citing
from patentlmm.cli import main
from processing import build_messages, build_prompt

FIRST = "US20250204297A1__1"  # described by the transformers backend before vLLM resumes the file
BATCH = ["US20250204297A1__19", "US20250204297A1__8", "US20250204297A1__12"]  # Tesseract: 178, 17, 2 OCR tokens
# Small on purpose (2 shared cores): 1 GiB of KV cache, one process, no thread pinning, no torch.compile.
VLLM_ENVIRONMENT = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
VLLM_ARGS = {"max_model_len": 2048, "enforce_eager": True}
GIVEN_WORDS = ["FIG.", "8", "nozzle", "402"]  # precomputed OCR sent with a request (not what Tesseract reads)
GIVEN_BOXES = [[60, 40, 120, 60], [130, 40, 150, 60], [300, 500, 380, 520], [390, 500, 430, 520]]


def _figure(image_id: str) -> Path:
    return FIGURES / f"{image_id}.png"


# ---------------------------------------------------------------------------------------------- the protocol


def test_processor_from_pretrained_uses_the_components_it_is_given(tiny, tiny_dir):
    from processing import PatentLMMProcessor

    _, processor = tiny
    loaded = PatentLMMProcessor.from_pretrained(tiny_dir, tokenizer=processor.tokenizer)  # as vLLM calls it
    assert loaded.tokenizer is processor.tokenizer
    assert loaded.ocr_tokenizer is not processor.ocr_tokenizer  # the others are loaded from the folder
    assert loaded._settings() == processor._settings()


def test_call_reports_each_figures_replacement_and_refuses_truncation(tiny, figures):
    _, processor = tiny
    paths = [figures["US20250204297A1__8"]["path"], figures["US20250204297A1__13"]["path"]]
    words = [["FIG.", "8", "16"], []]
    boxes = [[[700, 900, 800, 930], [810, 900, 830, 930], [100, 200, 130, 220]], []]
    prompts = ["<image>", build_prompt("brief")]
    ocr = {"ocr_words": words, "ocr_boxes": boxes}
    out = processor(images=paths, text=prompts, **ocr, truncation=False, return_text_replacement_offsets=True)
    offsets = out["text_replacement_offsets"]
    assert [len(entries) for entries in offsets] == [1, 1]
    for i, (prompt, [entry]) in enumerate(zip(prompts, offsets)):
        count = processor.num_image_features(int(out["ocr_attention_mask"][i].sum()))
        assert entry["type"] == "image" and entry["text"] == "<image>"
        assert entry["replacement"] == "<image>" * count
        assert prompt[slice(*entry["span"])] == "<image>"
        assert entry["new_span"] == (entry["span"][0], entry["span"][0] + len("<image>") * count)
        assert int(out["input_ids"][i].eq(processor.image_token_id).sum()) == count
    one = {"images": paths[:1], "text": prompts[:1], "ocr_words": words[:1], "ocr_boxes": boxes[:1]}
    assert "text_replacement_offsets" not in processor(**one)
    with pytest.raises(ValueError, match="never truncates prompts"):
        processor(**one, truncation=True)


def test_worst_case_placeholders_per_figure(tiny):
    _, processor = tiny
    counts = processor._get_num_multimodal_tokens(image_sizes=[[3300, 2550], [10, 10]])
    assert counts["num_image_tokens"] == [processor.max_ocr_tokens - 1 + processor.num_image_patches] * 2
    assert counts["num_image_patches"] == [1, 1]  # one row of pixel_values per figure


def _sentencepiece_processor(processor, legacy: bool, folder: Path):
    """`processor` with the LLaMA SentencePiece decoder tokenizer loaded under `legacy` (in memory)."""
    import shutil

    from transformers import LlamaTokenizerFast

    from patentlmm.assembly.components import prepare_decoder_tokenizer
    from patentlmm.assembly.tiny import _package_file
    from processing import PatentLMMProcessor

    shutil.copy(_package_file("mistral_common", "data/tokenizer.model.v1"), folder / "tokenizer.model")
    tokenizer = LlamaTokenizerFast.from_pretrained(folder, legacy=legacy, add_bos_token=True, add_eos_token=False)
    return PatentLMMProcessor(
        processor.image_processor,
        prepare_decoder_tokenizer(tokenizer),
        processor.ocr_tokenizer,
        num_image_patches=processor.num_image_patches,
        max_ocr_tokens=processor.max_ocr_tokens,
    )


@pytest.mark.parametrize("legacy", [None, False, True], ids=["init-tiny", "non-legacy", "legacy"])
def test_saved_tokenizer_turns_the_rendered_chat_prompt_into_the_processors_ids(tiny, figures, tmp_path, legacy):
    """vLLM's chat renders the default template and tokenizes it whole, adding no `<s>`, with the tokenizer of the
    model folder; vLLM then expands `<image>`. That must give the processor's ids, which follow the original's rule
    (`tokenize_prompt`: the text after the figure starts a word, `▁`), whatever the decoder tokenizer's `legacy`."""
    from transformers import AutoTokenizer

    from processing import PatentLMMProcessor
    from processing.prompts import tokenize_prompt

    _, processor = tiny
    if legacy is not None:
        (tmp_path / "sentencepiece").mkdir()
        processor = _sentencepiece_processor(processor, legacy, tmp_path / "sentencepiece")
    processor.save_pretrained(tmp_path / "saved")
    served_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "saved")  # as vLLM loads it

    rendered = processor.apply_chat_template(build_messages("brief"), add_generation_prompt=True)
    figure = figures["US20250204297A1__8"]["path"]
    ocr = {"ocr_words": [["FIG.", "8"]], "ocr_boxes": [[[1, 2, 3, 4]] * 2]}
    inputs = processor(images=figure, text=rendered, **ocr)
    ids = inputs["input_ids"][0].tolist()
    count = processor.num_image_features(inputs["ocr_input_ids"].shape[1])
    rule = tokenize_prompt(processor.tokenizer, build_prompt("brief"))
    at = rule.index(processor.image_token_id)
    assert ids == rule[:at] + [processor.image_token_id] * count + rule[at + 1 :]
    assert processor.tokenizer.convert_ids_to_tokens(rule[at + 1 : at + 3]) == ["▁", "<0x0A>"]
    assert served_tokenizer(rendered, add_special_tokens=False)["input_ids"] == rule
    # The saved tokenizer tokenizes text without special tokens as the in-memory one, and reloads into a processor
    # that makes the same ids.
    text = "FIG. 8 is a cross-sectional view of the nozzle (402)."
    assert served_tokenizer(text)["input_ids"] == processor.tokenizer(text)["input_ids"]
    reloaded = PatentLMMProcessor.from_pretrained(tmp_path / "saved", tokenizer=served_tokenizer)
    assert reloaded(images=figure, text=rendered, **ocr)["input_ids"].tolist() == [ids]


def test_image_features_as_vllm_asks_and_tuple_outputs(tiny, figures):
    model, processor = tiny
    figure_path = figures["US20250204297A1__8"]["path"]
    inputs = processor(images=figure_path, text=build_prompt("brief"), ocr_words=[["8"]], ocr_boxes=[[[1, 2, 3, 4]]])
    figure = {key: inputs[key] for key in ("pixel_values", "ocr_input_ids", "ocr_bbox", "ocr_attention_mask")}
    with torch.no_grad():
        features = model.model.get_image_features(**figure)
        pooled = model.model.get_image_features(**figure, return_dict=True).pooler_output
        as_tuple = model(**inputs, return_dict=False)
        logits = model(**inputs).logits
    assert isinstance(pooled, list) and len(pooled) == len(features) == 1
    assert torch.equal(pooled[0], features[0])
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], logits)


def test_layoutlmv3_bias_tables_are_not_linear_layers_and_keep_their_checkpoint_keys(tiny):
    """vLLM swaps every `nn.Linear` (and its CPU kernels empty `.weight`); LayoutLMv3 indexes these three."""
    model, _ = tiny
    encoder = model.model.vision_tower.encoder
    for name in ("rel_pos_bias", "rel_pos_x_bias", "rel_pos_y_bias"):
        table = getattr(encoder, name)
        assert not isinstance(table, nn.Linear)
        assert table.weight.shape == (model.config.vision_config.num_attention_heads, table.weight.shape[1])
        assert f"model.vision_tower.encoder.{name}.weight" in model.state_dict()


def test_tiny_decoder_head_dim_is_one_vllms_cpu_attention_takes(tiny):
    model, _ = tiny
    text = model.config.text_config
    assert text.hidden_size // text.num_attention_heads == 32  # vllm-cpu 0.32: 32, 64, 80, ... (16 is refused)


def test_describe_refuses_an_unknown_backend(tiny):
    from patentlmm.inference.describe import DescribeOptions, describe

    model, processor = tiny
    with pytest.raises(ValueError, match=r"backend must be one of \('transformers', 'vllm'\)"):
        describe(model, DescribeOptions(backend="tgi"), processor=processor)
    with pytest.warns(FutureWarning, match=r"engine=\.\.\.\) is deprecated: use backend"):
        assert DescribeOptions(engine="vllm").backend == "vllm"


# ---------------------------------------------------------------------------------------------- vLLM itself


def _cpu_blocker() -> str | None:
    """Why vLLM's CPU build cannot run on this CPU, or None. vllm-cpu 0.32 loads AVX-512 BF16, AVX-512 or AVX2
    kernels on x86-64 (`vllm/platforms/cpu.py`); below AVX2 there is none."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    cpuinfo_path = Path("/proc/cpuinfo")
    cpuinfo = cpuinfo_path.read_text(encoding="utf-8", errors="replace") if cpuinfo_path.exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    if flags and "avx2" not in flags:
        return f"vLLM's CPU build needs AVX2 on x86-64 and this CPU ({model}) has none"
    return None


@pytest.fixture(scope="module")
def vllm_python() -> str:
    python = python_from_env(VLLM_ENV, "vllm-cpu and patentlmm[vllm-cpu]", "the vLLM engine and server tests")
    blocker = _cpu_blocker()
    if blocker:
        pytest.skip(f"vLLM cannot run on this machine: {blocker}.")
    return python


def _vllm_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **VLLM_ENVIRONMENT, "PYTHONPATH": str(REPO), "HF_MODULES_CACHE": str(tmp_path / "modules")}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _describe_vllm(vllm_python: str, common: list[str], output: Path, images: list[str], tmp_path: Path) -> str:
    """`patentlmm <common> --backend vllm --output <output> <images>` in the vLLM venv; asserts it exits 0 and
    returns its log (stdout and stderr)."""
    command = [vllm_python, "-m", "patentlmm.cli", *common, "--backend", "vllm", "--vllm-args", json.dumps(VLLM_ARGS)]
    log = tmp_path / "describe-vllm.log"
    with log.open("w") as handle:
        result = subprocess.run(
            [*command, "--output", str(output), *images],
            cwd=tmp_path,
            env=_vllm_env(tmp_path),
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=280,
        )
    assert result.returncode == 0, log.read_text()[-6000:]
    return log.read_text()


@pytest.mark.slow
def test_describe_engine_vllm_writes_the_rows_of_the_transformers_engine(tiny_dir, vllm_python, tmp_path):
    """Real bundled figures with 178, 17 and 2 OCR tokens in one vLLM batch, resuming a JSONL that the transformers
    engine started; the file then equals the transformers backend's own full run."""
    images = [str(_figure(image_id)) for image_id in [FIRST, *BATCH]]
    # ungrounded: only then are the rows equal field for field (vLLM's do not report which constraints fired; the
    # grounded predictions are compared by test_describe_vllm_grounds_each_request_as_the_transformers_backend)
    common = ["describe", "--model", str(tiny_dir), "--max-new-tokens", "24", "--batch-size", "4", "--grounding", "off"]
    reference, resumed = tmp_path / "transformers.jsonl", tmp_path / "resumed.jsonl"
    assert main([*common, "--output", str(reference), *images]) == 0
    assert main([*common, "--limit", "1", "--output", str(resumed), *images]) == 0
    assert [row["image_id"] for row in _rows(resumed)] == [FIRST]

    log = _describe_vllm(vllm_python, common, resumed, images, tmp_path)
    assert f"Wrote {len(BATCH)} descriptions" in log
    expected = sorted(_rows(reference), key=lambda row: row["image_id"])
    assert sorted(_rows(resumed), key=lambda row: row["image_id"]) == expected
    assert all(row["prediction"] for row in expected)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def _wait_until_healthy(server: subprocess.Popen, url: str, log: Path, deadline_s: float = 300) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"vLLM's server exited with {server.returncode}:\n{log.read_text()[-6000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    pytest.fail(f"vLLM's server was not healthy after {deadline_s:.0f} s:\n{log.read_text()[-6000:]}")


@pytest.mark.slow
def test_openai_server_answers_a_chat_request_with_a_figure_as_generate_does(tiny, tiny_dir, vllm_python, tmp_path):
    """`vllm serve DIR --trust-remote-code --model-impl transformers`, started as the module `vllm serve` runs
    (vllm-cpu 0.32.0's `vllm` command cannot find its own version: `PackageNotFoundError: vllm`), on 127.0.0.1;
    the figure travels as a data URL and is OCR'd by Tesseract in the server, or its OCR comes with the request."""
    model, processor = tiny
    figure = _figure("US20250204297A1__8")
    port = _free_port()
    log = tmp_path / "server.log"
    arguments = ["--model", str(tiny_dir), "--trust-remote-code", "--model-impl", "transformers"]
    arguments += ["--trust-request-mm-kwargs"]  # lets a request carry precomputed OCR (`mm_processor_kwargs`)
    arguments += ["--dtype", "float32", "--max-model-len", "2048", "--enforce-eager", "--host", "127.0.0.1"]
    with log.open("w") as handle:
        server = subprocess.Popen(
            [vllm_python, "-m", "vllm.entrypoints.openai.api_server", *arguments, "--port", str(port)],
            cwd=tmp_path,
            env=_vllm_env(tmp_path),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(server, f"http://127.0.0.1:{port}/health", log)
        image_url = "data:image/png;base64," + base64.b64encode(figure.read_bytes()).decode("ascii")
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": "Write a brief description for this patent image."},
                ],
            }
        ]
        body = {"model": str(tiny_dir), "messages": messages, "temperature": 0, "max_tokens": 8}
        body["return_token_ids"] = True  # vLLM's extension: prompt and generated ids in the answer
        answer = _post(f"http://127.0.0.1:{port}/v1/chat/completions", body)
        # Precomputed OCR instead of the server's Tesseract (vLLM's `mm_processor_kwargs` request field).
        given = {"ocr_words": [GIVEN_WORDS], "ocr_boxes": [GIVEN_BOXES]}
        given_answer = _post(f"http://127.0.0.1:{port}/v1/chat/completions", {**body, "mm_processor_kwargs": given})
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    prompt = processor.apply_chat_template(build_messages("brief"), add_generation_prompt=True)
    for served, ocr in ((answer, {}), (given_answer, {"ocr_words": [GIVEN_WORDS], "ocr_boxes": [GIVEN_BOXES]})):
        inputs = processor(images=figure, text=prompt, **ocr)  # without `ocr`: Tesseract here too
        ids, served_ids = inputs["input_ids"][0].tolist(), served["prompt_token_ids"]
        # The processor's ids exactly (the original's rule: `▁` after the figure), the figure's placeholders included.
        assert served_ids == ids
        # The model side is exact: generate on the ids vLLM built, with the figure's tensors from the processor.
        served_inputs = {**inputs, "input_ids": torch.tensor([served_ids])}
        served_inputs["attention_mask"] = torch.ones_like(served_inputs["input_ids"])
        generated = model.generate(**served_inputs, max_new_tokens=8, do_sample=False)[0, len(served_ids) :]
        assert served["choices"][0]["token_ids"] == generated.tolist()
        assert served["choices"][0]["message"]["content"].strip()
    assert given_answer["prompt_token_ids"] != answer["prompt_token_ids"]  # the server used the OCR it was given


@pytest.mark.slow
def test_describe_vllm_grounds_each_request_as_the_transformers_backend(tiny, vllm_python, tmp_path):
    """The citing tiny model ("FIG. 1 is 1 is ...") with --grounding all: vLLM's per-request adapter gives the
    transformers backend's predictions, which cite only what each figure's OCR read."""
    model, processor = tiny
    folder = tmp_path / "citing"
    make_citing(copy.deepcopy(model), processor).save_pretrained(folder)
    processor.save_pretrained(folder)
    images = [str(_figure(image_id)) for image_id in [FIRST, *BATCH]]
    common = ["describe", "--model", str(folder), "--max-new-tokens", "12", "--grounding", "all"]
    reference, grounded = tmp_path / "transformers.jsonl", tmp_path / "vllm.jsonl"
    assert main([*common, "--output", str(reference), *images]) == 0
    _describe_vllm(vllm_python, common, grounded, images, tmp_path)
    expected = {row["image_id"]: row["prediction"] for row in _rows(reference)}
    assert {row["image_id"]: row["prediction"] for row in _rows(grounded)} == expected
    assert any(row.get("grounding_fired") for row in _rows(reference))  # the constraint changed something
    free = "no OCR words: unconstrained"
    assert all(row["grounding"] == "all" for row in _rows(grounded) if row.get("grounding_note") != free)
