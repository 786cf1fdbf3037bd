"""`python -m dataset_builder COMMAND ...`: see `dataset_builder.cli`."""

import sys

from .cli import main

sys.exit(main())
