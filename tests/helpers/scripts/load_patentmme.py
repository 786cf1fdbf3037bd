"""Loads a saved PatentMME folder through AutoConfig / AutoModelForPreTraining with trust_remote_code, as a user
without the patentlmm package would, runs it on saved inputs and writes its outputs; with a copy of the
`modeling_patentlmm` package and a visual tokenizer folder, also that tokenizer's ids.

    python load_patentmme.py MODEL_DIR INPUTS.safetensors OUTPUTS.safetensors [PACKAGE_PARENT TOKENIZER_DIR]
"""

import json
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForPreTraining

model_dir, inputs_path, outputs_path = sys.argv[1:4]
config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
model = AutoModelForPreTraining.from_pretrained(model_dir, trust_remote_code=True).eval()
inputs = load_file(inputs_path)
with torch.no_grad():
    output = model(**inputs)
tensors = {"last_hidden_state": output.last_hidden_state, "loss": output.loss}
for task in ("mlm", "mim", "pch", "tna"):
    tensors[f"{task}_loss"] = getattr(output, f"{task}_loss")
if len(sys.argv) > 5:
    sys.path.insert(0, sys.argv[4])
    from modeling_patentlmm.visual_tokenizer_patentmme import PatentMMEVisualTokenizer

    tokenizer = PatentMMEVisualTokenizer.from_pretrained(sys.argv[5])
    tensors["visual_tokens"] = tokenizer.encode(inputs["pixel_values"])
    print(json.dumps({"fingerprint": tokenizer.fingerprint}))
save_file({k: v.contiguous() for k, v in tensors.items()}, outputs_path)
print(json.dumps({"transformers": transformers.__version__, "config": type(config).__name__,
                  "model": type(model).__module__ + "." + type(model).__name__}))
