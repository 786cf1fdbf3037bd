"""Typed options' fields: `option()` (a dataclass field whose metadata declares its argument), `at_least` bounds and
`check_options`, which checks an options object made in Python as its command line would."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["at_least", "check_options", "option"]


def option(
    default: Any = dataclasses.MISSING,
    help: str | None = None,
    *,
    flag: str | None = None,
    positional: bool = False,
    type: Callable[[str], Any] | None = None,
    choices: typing.Sequence[Any] | None = None,
    nargs: str | int | None = None,
    metavar: str | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    deprecated_flag: str | None = None,
) -> Any:
    """A plain dataclass field whose metadata holds its command-line argument, as `HfArgumentParser` reads it
    (`help`, always; `type`, `choices`, ... when given), plus `flag` (the flag when not `--field-name`, e.g.
    `"--type"` for `desc_type`), `positional` and `deprecated_flag` (an old name of the flag, kept for one release,
    accepted with a warning naming the new flag). `patentlmm.cli.arguments.add_options` makes an argument of each
    field with a `help` key."""
    given = {"flag": flag, "positional": positional or None, "type": type, "choices": choices, "nargs": nargs}
    given["deprecated_flag"] = deprecated_flag
    metadata = {"help": help} | {key: value for key, value in given.items() if value is not None}
    if metavar is not None:
        metadata["metavar"] = metavar
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def at_least(minimum: float, kind: type = int, exclusive: bool = False) -> Callable[[str], Any]:
    """An argparse `type`: a `kind` number >= `minimum` (> with `exclusive`), else a one-line error naming the
    value, e.g. `argument --workers: 0 is not an integer >= 1`."""
    relation = ">" if exclusive else ">="
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or (value <= minimum if exclusive else value < minimum):  # NaN too
            raise argparse.ArgumentTypeError(f"{text} is not {noun} {relation} {minimum:g}")
        return value

    parse.__name__ = f"{kind.__name__} {relation} {minimum:g}"
    parse.minimum, parse.exclusive = minimum, exclusive  # for `check_options`
    return parse


def check_options(options: Any) -> None:
    """Checks an options object made in Python as its command line would: each field's `choices` (for a string
    value) and `at_least` bound (None passes), else a `ValueError` naming the field, e.g.
    `batch_size must be at least 1, got 0.`"""
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if value is None:
            continue
        choices = field.metadata.get("choices")
        if choices is not None and isinstance(value, str) and value not in choices:
            raise ValueError(f"{field.name} must be one of {tuple(choices)}, got {value!r}.")
        bound = field.metadata.get("type")
        minimum = getattr(bound, "minimum", None)
        if minimum is None:
            continue
        if getattr(bound, "exclusive", False) and value <= minimum:
            raise ValueError(f"{field.name} must be greater than {minimum:g}, got {value}.")
        if value < minimum:
            raise ValueError(f"{field.name} must be at least {minimum:g}, got {value}.")
