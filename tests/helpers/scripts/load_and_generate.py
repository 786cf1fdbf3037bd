"""Loads a saved PatentLMM folder through the Auto classes with trust_remote_code, as a user without the
patentlmm package would, and prints JSON: where the classes came from, logits and a greedy continuation (with the
default dynamic KV cache and with a static one).

    python load_and_generate.py MODEL_DIR IMAGE_PATH '["Figure", "8"]' '[[10, 10, 50, 20], [60, 10, 80, 20]]'

On transformers 4.x it uses `AutoModelForVision2Seq` (the design card's call), on 5.x `AutoModelForImageTextToText`.
"""

import json
import sys

import torch
import transformers
from transformers import AutoProcessor

if transformers.__version__.startswith("4."):
    from transformers import AutoModelForVision2Seq as AutoModelClass
else:
    from transformers import AutoModelForImageTextToText as AutoModelClass

model_dir, image_path, words, boxes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
model = AutoModelClass.from_pretrained(model_dir, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
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
inputs = processor(images=[image_path], text=[prompt], ocr_words=[words], ocr_boxes=[boxes])
with torch.no_grad():
    logits = model(**inputs).logits[0, -1]
generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
static = model.generate(**inputs, max_new_tokens=6, do_sample=False, cache_implementation="static")
# What vLLM's Transformers backend calls (issue 15): the same code must answer it on both transformers majors.
figure = {key: inputs[key] for key in ("pixel_values", "ocr_input_ids", "ocr_bbox", "ocr_attention_mask")}
with torch.no_grad():
    features = model.model.get_image_features(**figure)
    pooled = model.model.get_image_features(**figure, return_dict=True).pooler_output
    as_tuple = model.model(**inputs, return_dict=False)
    as_output = model.model(**inputs)
offsets = processor(
    images=[image_path], text=[prompt], ocr_words=[words], ocr_boxes=[boxes], return_text_replacement_offsets=True
)["text_replacement_offsets"]
given_tokenizer = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True, tokenizer=processor.tokenizer)
print(
    json.dumps(
        {
            "transformers": transformers.__version__,
            "auto_class": AutoModelClass.__name__,
            "model_module": type(model).__module__,
            "processor_module": type(processor).__module__,
            "imported_repo_packages": sorted(
                name for name in sys.modules if name.split(".")[0] in ("patentlmm", "modeling_patentlmm", "processing")
            ),
            "prompt": prompt,
            "input_ids": inputs["input_ids"][0].tolist(),
            "last_logits": logits.tolist(),
            "generated": generated[0, inputs["input_ids"].shape[1] :].tolist(),
            "generated_static_cache": static[0, inputs["input_ids"].shape[1] :].tolist(),
            "vllm_protocol": {
                "pooler_output_equal": len(pooled) == len(features) and all(map(torch.equal, pooled, features)),
                "tuple_equal": isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], as_output.last_hidden_state),
                "replacement_placeholders": offsets[0][0]["replacement"].count(processor.image_token),
                "num_image_tokens": processor._get_num_multimodal_tokens(image_sizes=[[300, 200]])["num_image_tokens"],
                "given_tokenizer_used": given_tokenizer.tokenizer is processor.tokenizer,
                "chat_template_is_one_string": isinstance(processor.chat_template, str),
            },
        }
    )
)
