"""The model card of a published PatentLMM: YAML metadata (widget, model-index), usage snippet and citation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from patentlmm_common.paper import ARXIV_URL, CITATION, TABLE2_METRICS
from processing.constants import DESCRIPTION_TYPES
from processing.prompts import instruction

__all__ = ["CARD_METRIC_NAMES", "build_model_card"]

# `patentlmm eval`'s result keys -> the card's column and model-index names (Table 2's, spelled out).
CARD_METRIC_NAMES = {metric.key: metric.name for metric in TABLE2_METRICS}

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

PatentLMM writes brief and detailed descriptions of patent figures ([arXiv 2501.15074]({{ arxiv_url }})):
a PatentMME (LayoutLMv3) encoder reads the figure together with its Tesseract OCR, a projector maps its features into
a LLaMA decoder, which writes the description. This checkpoint was packaged with `patentlmm`, the Hugging Face-native
implementation, whose code it carries (`trust_remote_code=True`).

## Use

Tesseract OCR must be installed (`apt-get install tesseract-ocr`).

```python
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor  # transformers 5.x

model = AutoModelForImageTextToText.from_pretrained("{{ repo_id }}", trust_remote_code=True, dtype=torch.bfloat16)
processor = AutoProcessor.from_pretrained("{{ repo_id }}", trust_remote_code=True)
messages = [{"role": "user", "content": [{"type": "image"},
             {"type": "text", "text": "{{ instruction }}"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=["figure.png"], text=[prompt]).to(model.device)
inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
output = model.generate(**inputs, max_new_tokens={{ max_new_tokens }}, do_sample=False)
print(processor.batch_decode(output[:, inputs["input_ids"].shape[1]:])[0])
```

On transformers 4.x, load the model with
`AutoModelForVision2Seq.from_pretrained("{{ repo_id }}", trust_remote_code=True)`.

{% if results_table %}## Evaluation

{{ results_table }}
{% endif %}
## Citation

```bibtex
{{ citation }}
```
"""


def _results_table(metrics: dict[str, float]) -> str:
    """A one-row Markdown table of the `CARD_METRIC_NAMES` found in `metrics`, in that order, two decimals."""
    keys = [key for key in CARD_METRIC_NAMES if key in metrics]
    header = "| " + " | ".join(CARD_METRIC_NAMES[key] for key in keys) + " |"
    rule = "|" + "---|" * len(keys)
    row = "| " + " | ".join(f"{metrics[key]:.2f}" for key in keys) + " |"
    return "\n".join([header, rule, row])


def build_model_card(
    repo_id: str,
    desc_type: str = DESCRIPTION_TYPES[0],
    metrics: dict[str, float] | None = None,
    base_model: str | None = None,
    dataset_id: str = "patentdesc-355k",
    widget_images: Sequence[str | os.PathLike] = (),
    license: str = "apache-2.0",
) -> ModelCard:
    """A model card with YAML metadata (pipeline tag, widget, model-index from `metrics`), usage and citation."""
    eval_results = [
        EvalResult(
            task_type="image-text-to-text",
            dataset_type=dataset_id,
            dataset_name=f"PatentDesc-355k ({desc_type})",
            dataset_split="test",
            metric_type=key,
            metric_name=CARD_METRIC_NAMES[key],
            metric_value=float(value),
        )
        for key, value in (metrics or {}).items()
        if key in CARD_METRIC_NAMES
    ]
    widget = [
        {"src": f"examples/{Path(image).name}", "text": instruction(desc_type), "example_title": Path(image).stem}
        for image in widget_images
    ]
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["patentlmm", "patents", "layoutlmv3", "llava", "custom_code"],
        datasets=[dataset_id],
        base_model=base_model,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
        widget=widget or None,
    )
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        title=repo_id.split("/")[-1],
        repo_id=repo_id,
        arxiv_url=ARXIV_URL,
        instruction=instruction(desc_type),
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
        results_table=_results_table(metrics) if metrics else "",
        citation=CITATION,
    )
