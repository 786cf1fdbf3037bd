"""`patentlmm.cli.arguments`: typed options dataclasses become argparse arguments and come back as objects."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm_common.fields import at_least, option


@dataclass
class ExampleOptions:
    model: str = option(help="a model")
    images: list[Path] = option(positional=True, help="figures")
    desc_type: str = option("brief", flag="--type", choices=("brief", "detailed"))
    batch_size: int = option(8, type=at_least(1))
    limit: int | None = option(None, type=at_least(1))
    resume: bool = option(True, help="switch, on by default")
    verbose: bool = option(False)
    not_an_option: int = 3


def parse(argv: list[str]) -> ExampleOptions:
    parser = argparse.ArgumentParser(prog="example")
    add_options(parser, ExampleOptions)
    return options_from_args(ExampleOptions, parser.parse_args(argv))


def test_fields_become_arguments_and_come_back_typed():
    options = parse(["a.png", "b.png", "--model", "m", "--type", "detailed", "--batch-size", "2", "--no-resume"])
    assert options == ExampleOptions(
        model="m", images=[Path("a.png"), Path("b.png")], desc_type="detailed", batch_size=2, resume=False
    )
    assert parse(["--model", "m", "--verbose"]) == ExampleOptions(model="m", images=[], verbose=True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0", "--model", "m"], "argument --batch-size: 0 is not an integer >= 1"),
        ([], "the following arguments are required: --model"),
        (["--model", "m", "--type", "long"], "argument --type: invalid choice: 'long'"),
    ],
)
def test_bad_values_are_refused_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
