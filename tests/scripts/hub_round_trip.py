"""Pushes a model folder and a dataset folder to the Hub at $HF_ENDPOINT, downloads them back and uses them.
Prints one JSON line. Run with HF_ENDPOINT, HF_HOME and HF_TOKEN set (huggingface_hub reads them at import).

    python hub_round_trip.py MODEL_DIR DATASET_DIR IMAGE WORDS_JSON BOXES_JSON
"""

import json
import sys

import torch
from datasets import load_dataset
from huggingface_hub import HfApi, snapshot_download
from transformers import AutoModelForImageTextToText, AutoProcessor

from push_to_hub import push_dataset, push_model

model_dir, dataset_dir, image, words, boxes = sys.argv[1:6]
repo_id, dataset_repo = "tester/patentlmm-tiny", "tester/patentdesc-mini"
api = HfApi()

first = push_model(model_dir, repo_id, commit_message="first push")
sha_after_first = api.model_info(repo_id).sha
second = push_model(model_dir, repo_id, commit_message="second push")
sha_after_second = api.model_info(repo_id).sha
files = sorted(api.list_repo_files(repo_id))

local = snapshot_download(repo_id)
model = AutoModelForImageTextToText.from_pretrained(local, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)  # by repo id, through the Hub
prompt = processor.apply_chat_template(
    [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "Write a brief description for this patent image."},
            ],
        }
    ],
    add_generation_prompt=True,
)
inputs = processor(images=[image], text=[prompt], ocr_words=[json.loads(words)], ocr_boxes=[json.loads(boxes)])
with torch.no_grad():
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)

push_dataset(dataset_dir, dataset_repo)
dataset = load_dataset(dataset_repo, "brief", split="train")

print(
    json.dumps(
        {
            "sha_after_first": sha_after_first,
            "sha_after_second": sha_after_second,
            "files": files,
            "model_module": type(model).__module__,
            "generated": generated[0, inputs["input_ids"].shape[1] :].tolist(),
            "dataset_rows": [dataset[i]["image_id"] for i in range(len(dataset))],
            "dataset_image_size": list(dataset[0]["image"].size),
        }
    )
)
