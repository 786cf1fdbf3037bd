"""Imports run downward only (docs/architecture.md): read off every module's import statements (ast, nothing is
imported), and a dataset step imported in a fresh interpreter loads neither torch nor the model."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

# Each first-party area and its layer, bottom first; a module may import its own area and the areas of lower layers.
# Root scripts (app.py, train_sft.py, push_to_hub.py) and `python -m` entry points are launchers, above everything.
LAYERS = {
    "modeling_patentlmm": 0,  # remote code: copied flat into saved model folders
    "processing": 0,
    "patentlmm_common": 1,  # the paper's facts, option fields, atomic files, JSON Lines, weight checks
    "dataset_builder": 2,
    "patentlmm": 3,  # the library: patentlmm/__init__ and every patentlmm.<area> but the command line
    "patentlmm.cli": 4,
    "launcher": 5,
}
# Within the library, an area never imports one listed after it (areas not listed are only held to the layers).
LIBRARY_ORDER = ("patentlmm.assembly", "patentlmm.evaluation", "patentlmm.inference", "patentlmm.demo")
LIBRARY_PEERS = ("patentlmm.inference", "patentlmm.training", "patentlmm.hub")  # never import one another
PACKAGES = ("modeling_patentlmm", "processing", "patentlmm_common", "dataset_builder", "patentlmm")
LAUNCHERS = ("__main__",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    modules = {_module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")}
    modules.update({path.stem: path for path in REPO.glob("*.py")})
    return modules


def _imports(name: str, path: Path) -> set[str]:
    """The first-party modules `name` imports anywhere in its source (function bodies too), relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            targets = [".".join(base + ([node.module] if node.module else []))]
        elif isinstance(node, ast.ImportFrom):
            targets = [node.module]
        else:
            continue
        found.update(target for target in targets if target.split(".")[0] in PACKAGES)
    return found


def _area(module: str) -> str:
    """`patentlmm.inference.describe` -> `patentlmm.inference`; `dataset_builder.ocr` -> `dataset_builder`; a root
    script or `__main__` module -> `launcher`."""
    parts = module.split(".")
    if parts[0] not in PACKAGES or parts[-1] in LAUNCHERS:
        return "launcher"
    if parts[0] == "patentlmm" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _layer(area: str) -> int:
    return LAYERS.get(area, LAYERS["patentlmm"] if area.startswith("patentlmm.") else LAYERS[area])


def _import_graph() -> list[tuple[str, str, str, str]]:
    """(importing module, its area, imported module, its area) for every first-party import between areas."""
    return [
        (name, _area(name), target, _area(target))
        for name, path in sorted(_modules().items())
        for target in sorted(_imports(name, path))
        if _area(name) != _area(target)
    ]


def test_the_graph_is_read_from_every_module():
    graph = _import_graph()
    edges = {(area, target_area) for _, area, _, target_area in graph}
    # A few imports that exist, so that a parser that reads nothing cannot pass the tests below.
    assert ("patentlmm.cli", "patentlmm.inference") in edges
    assert ("dataset_builder", "processing") in edges
    assert ("patentlmm.inference", "patentlmm_common") in edges
    assert _area("dataset_builder.__main__") == _area("app") == "launcher"


def test_imports_run_downward_only():
    upward = [
        f"{name} ({_layer(area)}) imports {target} ({_layer(target_area)})"
        for name, area, target, target_area in _import_graph()
        if _layer(target_area) > _layer(area)
    ]
    assert upward == [], "imports must run downward (docs/architecture.md, 'Layers'):\n" + "\n".join(upward)


def test_remote_code_imports_only_its_own_package_relatively():
    """modeling_patentlmm/ and processing/ are copied flat into saved model folders: they may import their own
    siblings, relatively, and third-party packages; never another first-party package, not even each other."""
    absolute = []
    for name, path in _modules().items():
        if _area(name) not in ("modeling_patentlmm", "processing"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            absolute += [f"{name} imports {target}" for target in names if target.split(".")[0] in PACKAGES]
    assert absolute == []


def test_library_areas_import_downward_within_the_library():
    rank = {area: index for index, area in enumerate(LIBRARY_ORDER)}
    wrong = [
        f"{name} imports {target}"
        for name, area, target, target_area in _import_graph()
        if (area in rank and target_area in rank and rank[target_area] > rank[area])
        or (area in LIBRARY_PEERS and target_area in LIBRARY_PEERS)
    ]
    assert wrong == []


def _step_modules() -> list[str]:
    from dataset_builder.steps import STEP_RUNNERS

    return ["dataset_builder.steps", "dataset_builder.options"] + [
        f"dataset_builder.{module}" for module, _ in STEP_RUNNERS.values()
    ]


@pytest.fixture(scope="module")
def loaded_by_the_steps() -> list[str]:
    """The modules a fresh interpreter holds after importing every dataset step (from the checkout): what none of
    them loads, no one of them loads."""
    code = f"import json, sys; import {', '.join(_step_modules())}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(result.stdout)


def test_a_dataset_step_does_not_load_the_model_or_the_library(loaded_by_the_steps):
    assert set(_step_modules()) <= set(loaded_by_the_steps)
    assert "dataset_builder.download" in loaded_by_the_steps
    library = [name for name in loaded_by_the_steps if name.split(".")[0] in ("patentlmm", "modeling_patentlmm")]
    assert library == []


def test_a_dataset_step_does_not_load_torch(loaded_by_the_steps):
    assert "torch" not in loaded_by_the_steps
