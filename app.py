"""PatentLMM web demo as a Hugging Face Space: `PATENTLMM_MODEL` names the model folder or Hub repo id.

PATENTLMM_MODEL=you/patentlmm-brief python app.py
"""

import os

from patentlmm.demo.web import MAX_UPLOAD_SIZE, build_app
from patentlmm.inference.describe import load_model_and_processor

model, processor = load_model_and_processor(os.environ.get("PATENTLMM_MODEL", "outputs/demo/model"))
build_app(model, processor).launch(max_file_size=MAX_UPLOAD_SIZE)
