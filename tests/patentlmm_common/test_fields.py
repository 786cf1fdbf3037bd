"""`patentlmm_common.fields`: option fields are plain dataclass fields whose metadata `HfArgumentParser` reads, and
`check_options` refuses in Python what the command line refuses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from transformers import HfArgumentParser

from patentlmm_common.fields import at_least, check_options, option


def test_an_option_is_a_plain_field_with_hf_argument_parser_metadata():
    @dataclass
    class Plain:
        count: int = option(2, "how many", type=at_least(1))
        kind: str = option("brief", "which", choices=("brief", "detailed"))

    count, kind = dataclasses.fields(Plain)
    assert dict(count.metadata) == {"help": "how many", "type": count.metadata["type"]}
    assert dict(kind.metadata) == {"help": "which", "choices": ("brief", "detailed")}
    (parsed,) = HfArgumentParser(Plain).parse_args_into_dataclasses(["--count", "3", "--kind", "detailed"])
    assert parsed == Plain(count=3, kind="detailed")
    with pytest.raises(ValueError, match="count must be at least 1, got 0."):
        check_options(Plain(count=0))


def test_check_options_refuses_in_python_what_the_command_line_refuses():
    @dataclass
    class Checked:
        count: int = option(1, type=at_least(1))
        rate: float = option(1.0, type=at_least(0, float, exclusive=True))
        kind: str = option("brief", choices=("brief", "detailed"))
        limit: int | None = option(None, type=at_least(1))

        def __post_init__(self):
            check_options(self)

    assert Checked(count=3, rate=0.5, kind="detailed") == Checked(3, 0.5, "detailed", None)
    for fields, message in (
        ({"count": 0}, "count must be at least 1, got 0."),
        ({"rate": 0.0}, "rate must be greater than 0, got 0.0."),
        ({"kind": "long"}, "kind must be one of ('brief', 'detailed'), got 'long'."),
        ({"limit": -1}, "limit must be at least 1, got -1."),
    ):
        with pytest.raises(ValueError) as error:
            Checked(**fields)
        assert str(error.value) == message
