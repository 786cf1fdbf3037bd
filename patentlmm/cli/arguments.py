"""Command-line arguments from typed options: `add_options` declares one per `option()` field, `options_from_args`
makes the options object."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["add_options", "options_from_args"]

T = TypeVar("T")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(`X`, is_list) for an annotation `X`, `X | None`, `list[X]` or `list[X] | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) in (list, tuple):
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Declares one argument per field of the options dataclass `cls` that has a `help` (`patentlmm_common.fields.
    option`) on `parser` (its `dest` is the field name)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        spec = field.metadata
        if "help" not in spec:
            continue
        base, is_list = _base_type(hints[field.name])
        kwargs: dict[str, Any] = {"help": spec["help"]}
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if base is bool and "type" not in spec:
            kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
        else:
            kwargs["type"] = spec.get("type") or (base if base in (int, float, str, Path) else str)
            for key in ("choices", "metavar"):
                if key in spec:
                    kwargs[key] = spec[key]
            nargs = spec.get("nargs") or ("*" if is_list else None)
            if nargs is not None:
                kwargs["nargs"] = nargs
        if spec.get("positional"):
            if has_default:
                kwargs["default"] = default
            parser.add_argument(field.name, **kwargs)
            continue
        flag = spec.get("flag") or f"--{field.name.replace('_', '-')}"
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
