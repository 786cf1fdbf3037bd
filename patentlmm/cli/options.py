"""Command-line options as typed dataclasses: `option()` declares a field, `add_options` makes the arguments."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["add_options", "at_least", "check_options", "option", "options_from_args"]

T = TypeVar("T")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str | None = None,
    flag: str | None = None,
    positional: bool = False,
    type: Callable[[str], Any] | None = None,
    choices: typing.Sequence[Any] | None = None,
    nargs: str | int | None = None,
    metavar: str | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    deprecated_flag: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line argument.

    The flag is `--field-name` unless `flag` names another (e.g. `"--type"` for `desc_type`); `positional` makes it a
    positional argument. `type` parses the text (default: the field's annotated type: `int`, `float`, `str`, `Path`;
    list fields parse each item). A `bool` field without `type` is a switch: `--x` when it defaults to false,
    `--x/--no-x` when it defaults to true. A field without a default is required. `deprecated_flag` (an old name of
    the flag, kept for one release) is accepted too, with a warning naming the new flag.
    """
    metadata = {
        "help": help,
        "flag": flag,
        "positional": positional,
        "type": type,
        "choices": choices,
        "nargs": nargs,
        "metavar": metavar,
        "deprecated_flag": deprecated_flag,
    }
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"cli": metadata})


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(`X`, is_list) for an annotation `X`, `X | None`, `list[X]` or `list[X] | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) in (list, tuple):
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Declares one argument per field of the options dataclass `cls` on `parser` (its `dest` is the field name)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        spec = field.metadata.get("cli")
        if spec is None:
            continue
        base, is_list = _base_type(hints[field.name])
        kwargs: dict[str, Any] = {"help": spec["help"]}
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if base is bool and spec["type"] is None:
            kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
        else:
            kwargs["type"] = spec["type"] or (base if base in (int, float, str, Path) else str)
            for key in ("choices", "metavar"):
                if spec[key] is not None:
                    kwargs[key] = spec[key]
            nargs = spec["nargs"] or ("*" if is_list else None)
            if nargs is not None:
                kwargs["nargs"] = nargs
        if spec["positional"]:
            if has_default:
                kwargs["default"] = default
            parser.add_argument(field.name, **kwargs)
            continue
        flag = spec["flag"] or f"--{field.name.replace('_', '-')}"
        if has_default:
            kwargs["default"] = default
        else:
            kwargs["required"] = True
        parser.add_argument(flag, dest=field.name, **kwargs)
        if spec.get("deprecated_flag"):
            kwargs.update(default=argparse.SUPPRESS, help=argparse.SUPPRESS, required=False, new_flag=flag)
            parser.add_argument(spec["deprecated_flag"], dest=field.name, action=_DeprecatedFlag, **kwargs)


class _DeprecatedFlag(argparse.Action):
    """Stores the value of an old flag name, warning on stderr that it is deprecated and which flag replaces it."""

    def __init__(self, option_strings: list[str], dest: str, new_flag: str, **kwargs: Any):
        super().__init__(option_strings, dest, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated, use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def options_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The options object of `cls` from parsed `args` (the fields `add_options` declared, by name)."""
    names = [field.name for field in dataclasses.fields(cls) if hasattr(args, field.name)]
    return cls(**{name: getattr(args, name) for name in names})


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
        spec = field.metadata.get("cli")
        value = getattr(options, field.name)
        if spec is None or value is None:
            continue
        choices = spec["choices"]
        if choices is not None and isinstance(value, str) and value not in choices:
            raise ValueError(f"{field.name} must be one of {tuple(choices)}, got {value!r}.")
        minimum = getattr(spec["type"], "minimum", None)
        if minimum is None:
            continue
        if getattr(spec["type"], "exclusive", False) and value <= minimum:
            raise ValueError(f"{field.name} must be greater than {minimum:g}, got {value}.")
        if value < minimum:
            raise ValueError(f"{field.name} must be at least {minimum:g}, got {value}.")
