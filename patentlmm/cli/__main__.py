"""`python -m patentlmm.cli`: the `patentlmm` command (for launchers such as `accelerate launch -m`)."""

import sys

from patentlmm.cli import main

sys.exit(main())
