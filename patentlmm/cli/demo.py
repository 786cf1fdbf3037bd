"""`patentlmm demo [options]` (`patentlmm.demo.pipeline`), or `patentlmm demo --web` (`patentlmm.demo.web`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm.demo.pipeline import DEFAULT_MODEL, DemoOptions, run_demo
from patentlmm_common.fields import at_least, option

__all__ = ["WebOptions", "add_arguments", "run"]


@dataclass
class WebOptions:
    """`--web`: the Gradio web demo instead of the offline run, its model and where it listens."""

    web: bool = option(False, help="serve the Gradio web demo on --model instead")
    model: str = option(str(DEFAULT_MODEL), help="--web: PatentLMM folder or Hub repo id")
    host: str = option("127.0.0.1", help="--web: address to listen on")
    port: int = option(7860, type=at_least(1), help="--web: port")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, WebOptions)
    add_options(parser, DemoOptions)


def run(args: argparse.Namespace) -> int:
    web, options = options_from_args(WebOptions, args), options_from_args(DemoOptions, args)
    if web.web:
        from patentlmm.demo.web import serve

        serve(web.model, web.host, web.port, options.max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    else:
        run_demo(options)
    return 0
