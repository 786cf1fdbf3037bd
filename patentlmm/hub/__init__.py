"""Hub publishing: the files a model repo needs, its card, and the upload of a model or dataset folder."""

from patentlmm.hub.cards import build_model_card
from patentlmm.hub.files import MODEL_REPO_FILES, select_model_files, stage_model_folder
from patentlmm.hub.publish import PushOptions, push_dataset, push_model
from patentlmm_common.weights import check_safetensors, check_weights  # the checks before a push, as before loading

__all__ = [
    "MODEL_REPO_FILES",
    "PushOptions",
    "build_model_card",
    "check_safetensors",
    "check_weights",
    "push_dataset",
    "push_model",
    "select_model_files",
    "stage_model_folder",
]
