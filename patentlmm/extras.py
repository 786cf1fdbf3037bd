"""The package's optional parts, imported with a message telling which extra installs what they need."""

from __future__ import annotations

from types import ModuleType

__all__ = ["import_training"]


def import_training(command: str) -> ModuleType:
    """`patentlmm.training`, or a `SystemExit` telling how to install what it needs (`command` names who needs it)."""
    try:
        from patentlmm import training
    except ImportError as error:
        raise SystemExit(f"{command} needs the training extra: `pip install 'patentlmm[train]'` ({error}).") from error
    return training
