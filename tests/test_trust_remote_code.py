"""No command of the package can stop at transformers' interactive "run the custom code? [y/N]" question: it is asked
when an Auto class (or a processor's loader) gets `trust_remote_code=None` and stdin is a terminal, so every such call
in the package's sources passes an explicit value (found in the syntax tree, not by text), and the processor's own
loader defaults to False."""

from __future__ import annotations

import ast
import inspect

from helpers import REPO

SOURCES = [
    *(path for package in ("patentlmm", "processing", "modeling_patentlmm", "dataset_builder")
      for path in sorted((REPO / package).rglob("*.py"))),
    REPO / "app.py", REPO / "push_to_hub.py", REPO / "train_sft.py",
]  # fmt: skip


def _asks(call: ast.Call) -> bool:
    """A `from_pretrained` call of an Auto class (`AutoConfig`, `auto_class`, ...) or a `pipeline(...)` call."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "from_pretrained":
        owner = func.value.id if isinstance(func.value, ast.Name) else ast.unparse(func.value)
        return "auto" in owner.lower()
    return isinstance(func, ast.Name) and func.id == "pipeline"


def test_every_auto_loading_call_passes_trust_remote_code():
    calls, implicit = 0, []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and _asks(node):
                calls += 1
                if not any(keyword.arg == "trust_remote_code" for keyword in node.keywords):
                    implicit.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node.func)}")
    assert calls >= 10, calls  # the scan sees the package's calls (the training and conversion loaders at least)
    assert implicit == [], "trust_remote_code left to transformers (it may ask on a terminal):\n" + "\n".join(implicit)


def test_the_processor_loader_defaults_to_no_remote_code():
    from processing import processor_files

    source = inspect.getsource(processor_files)
    assert 'kwargs.pop("trust_remote_code", False)' in source
