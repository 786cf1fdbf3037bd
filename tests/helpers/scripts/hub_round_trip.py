"""Pushes a model folder and a dataset folder to the Hub at $HF_ENDPOINT, then uses them as a user would: the model
by its repo id in a process without patentlmm (`load_and_generate.py`), the dataset with `load_dataset`. Prints one
JSON line. Run with HF_ENDPOINT, HF_HOME and HF_TOKEN set (huggingface_hub reads them at import).

    python hub_round_trip.py MODEL_DIR DATASET_DIR IMAGE WORDS_JSON BOXES_JSON
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from datasets import load_dataset
from huggingface_hub import HfApi

from patentlmm.hub import PushOptions, push_dataset, push_model

LOADER = Path(__file__).with_name("load_and_generate.py")

model_dir, dataset_dir, image, words, boxes = sys.argv[1:6]
repo_id, dataset_repo = "tester/patentlmm-tiny", "tester/patentdesc-mini"
api = HfApi()

push_model(model_dir, PushOptions(repo_id, commit_message="first push"))
sha_after_first = api.model_info(repo_id).sha
push_model(model_dir, PushOptions(repo_id, commit_message="second push"))
sha_after_second = api.model_info(repo_id).sha
files = sorted(api.list_repo_files(repo_id))

# Importing patentlmm registered its classes with the Auto classes here: the remote code is loaded elsewhere.
loaded = subprocess.run(
    [sys.executable, str(LOADER), repo_id, image, words, boxes],
    env={**os.environ, "PYTHONPATH": ""},  # the repository's packages are not importable there
    capture_output=True,
    text=True,
    check=False,
)
if loaded.returncode != 0:
    sys.exit(f"{LOADER.name} failed:\n{loaded.stderr[-3000:]}")
model = json.loads(loaded.stdout.strip().splitlines()[-1])

push_dataset(dataset_dir, PushOptions(dataset_repo))
dataset = load_dataset(dataset_repo, "brief", split="train")

print(
    json.dumps(
        {
            "sha_after_first": sha_after_first,
            "sha_after_second": sha_after_second,
            "files": files,
            "model_module": model["model_module"],
            "generated": model["generated"],
            "dataset_rows": [dataset[i]["image_id"] for i in range(len(dataset))],
            "dataset_image_size": list(dataset[0]["image"].size),
        }
    )
)
