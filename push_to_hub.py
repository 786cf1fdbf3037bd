"""Publish a PatentLMM model folder (trained or converted) or a built `patentdesc-355k/` dataset to a Hub.

    python push_to_hub.py model outputs/stage2 --repo-id you/patentlmm-brief --metrics metrics.json --private
    python push_to_hub.py model outputs/stage2 --repo-id you/patentlmm-brief --dry-run --staging-dir hub-folder
    python push_to_hub.py dataset DATASET/patentdesc-355k --repo-id you/patentdesc-355k

The same as `patentlmm push ...` (`patentlmm.cli.push`); the library is `patentlmm.hub` (`push_model`,
`push_dataset`, `stage_model_folder`, `build_model_card`). The token comes from `HF_TOKEN` or `huggingface-cli login`
(never printed); `HF_ENDPOINT` selects another Hub.
"""

from __future__ import annotations

import argparse

from patentlmm.cli import push

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="push_to_hub.py", description=__doc__.split("\n\n")[0])
    push.add_arguments(parser)
    return push.run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
