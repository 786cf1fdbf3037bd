"""The web demo as a Hugging Face Space: `PATENTLMM_MODEL` names the model folder or Hub repo id (docs/demo.md)."""

import os

from patentlmm.demo.pipeline import DEFAULT_MODEL
from patentlmm.demo.web import serve

serve(os.environ.get("PATENTLMM_MODEL", str(DEFAULT_MODEL)))
