"""`patentlmm push model|dataset FOLDER --repo-id OWNER/NAME`: publish a model folder (with its card) or a dataset."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm.hub.publish import PushOptions, push_dataset, push_model
from patentlmm_common.fields import option

__all__ = ["PushTarget", "add_arguments", "run"]


@dataclass
class PushTarget:
    """What `patentlmm push` publishes."""

    what: str = option(positional=True, choices=("model", "dataset"), help="a model folder or a built dataset folder")
    folder: Path = option(positional=True, help="the folder to publish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PushTarget)
    add_options(parser, PushOptions)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    target, options = options_from_args(PushTarget, args), options_from_args(PushOptions, args)
    push = push_model if target.what == "model" else push_dataset
    try:
        print(push(target.folder, options))
    except (FileNotFoundError, ValueError) as error:  # a folder that must not or cannot be published: nothing was
        print(f"error: {error}", file=sys.stderr)  # uploaded, and the message names the file
        return 1
    return 0
