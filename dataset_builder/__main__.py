"""`python -m dataset_builder STEP ...`: the same commands as `patentlmm dataset STEP ...`."""

import sys

from patentlmm.cli.dataset import main

sys.exit(main(prog="python -m dataset_builder"))
