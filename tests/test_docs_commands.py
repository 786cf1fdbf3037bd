"""Every command shown in README.md and docs/*.md (```bash blocks) is exercised: each is parsed by the parser of
the program it runs (`patentlmm`, `train_sft.py` through TrlParser, `accelerate launch`, the benchmark scripts), its
files (recipes, accelerate configs, scripts) exist, and shell scripts pass `bash -n`. Running them for real is the
job of the other tests (the demo, training, describe, push and dataset tests)."""

from __future__ import annotations

import argparse
import configparser
import json
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.M | re.S)
# Values for the shell variables the docs use (a SLURM array index, a node rank, the head node's address).
VARIABLES = {"SLURM_ARRAY_TASK_ID": "3", "NODE_RANK": "1", "HEAD": "10.0.0.1", "SLURM_NODEID": "0"}


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of each command: continuation lines joined, `&&` chains split, comments dropped."""
    commands = []
    for doc in DOCS:
        for block in SHELL_BLOCK.findall(doc.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                for part in re.split(r"\s&&\s", line):
                    argv = shlex.split(part, comments=True)
                    if argv:
                        argv = [re.sub(r"\$(\w+)", lambda m: VARIABLES[m.group(1)], arg) for arg in argv]
                        commands.append((f"{doc.name} #{len(commands)}: {' '.join(argv)[:80]}", argv))
    return commands


COMMANDS = documented_commands()


class _Parsed(Exception):
    """Raised in place of running a program once its argparse parser has accepted the command line."""


def _parse_only(run):
    """Calls `run()` (a program's entry point) until its first `ArgumentParser.parse_args` returns."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop):
        try:
            run()
        except _Parsed as parsed:
            return parsed.args[0]
    raise AssertionError("the program returned without parsing its arguments")


def _train_argvs(argv: list[str]) -> list[list[str]]:
    """The `train_sft.py` argument lists a documented command runs (none for other programs)."""
    if argv[:2] == ["python", "train_sft.py"]:
        return [argv[2:]]
    if argv[:2] == ["patentlmm", "train"]:
        return [["--config", argv[2], *argv[3:]]]
    if argv[:2] == ["accelerate", "launch"]:
        from accelerate.commands.launch import launch_command_parser

        launch = launch_command_parser().parse_args(argv[2:])
        assert (REPO / launch.config_file).is_file(), launch.config_file
        assert isinstance(yaml.safe_load((REPO / launch.config_file).read_text()), dict)
        assert launch.training_script == "train_sft.py", launch.training_script
        return [launch.training_script_args]
    return []


@pytest.fixture(scope="module")
def parsed_training() -> dict[str, dict]:
    """Every documented `train_sft.py` command line, parsed by TrlParser in one subprocess (TrainingArguments sets
    process state: accelerate's, environment variables)."""
    argvs = {where: train for where, argv in COMMANDS for train in _train_argvs(argv)}
    result = subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "parse_train_commands.py")],
                            input=json.dumps(list(argvs.values())), cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(zip(argvs, json.loads(result.stdout.strip().splitlines()[-1])))


def test_the_docs_show_the_commands_this_file_knows():
    programs = {" ".join(argv[:2]) if argv[0] in ("python", "bash", "pip") else argv[0] for _, argv in COMMANDS}
    assert len(COMMANDS) >= 25
    known = {"patentlmm", "accelerate", "bash scripts/install.sh", "bash scripts/test.sh", "pip install",
             "python train_sft.py", "python benchmarks/bench_processor.py", "python benchmarks/bench_train.py"}  # fmt: skip
    assert programs <= known, programs - known
    assert any(argv[:4] == ["accelerate", "launch", "--config_file", "recipes/accelerate/deepspeed_zero2.yaml"]
               and argv[4:6] == ["train_sft.py", "recipes/stage2_brief.yaml"] for _, argv in COMMANDS)  # fmt: skip


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command(where, argv, parsed_training):
    if argv[0] == "bash":
        script = REPO / argv[1]
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, where
    elif argv[:2] == ["pip", "install"]:
        extras = configparser.ConfigParser()
        extras.read(REPO / "setup.cfg")
        for spec in argv[2:]:
            if spec.startswith(".["):
                assert set(spec[2:-1].split(",")) <= set(extras["options.extras_require"]), spec
    elif argv[0] == "patentlmm":
        from patentlmm.cli import build_parser

        build_parser(argv[1]).parse_args(argv[1:])  # exits (SystemExit 2) on an unknown option
    elif argv[0] == "python" and argv[1].startswith("benchmarks/"):
        with mock.patch.object(sys, "argv", argv[1:]):
            _parse_only(lambda: runpy.run_path(str(REPO / argv[1]), run_name="__main__"))
    for parsed in (parsed_training[where],) if where in parsed_training else ():
        assert "error" not in parsed, f"{where}: {parsed.get('error')}"
        assert parsed["output_dir"] == argv[argv.index("--output_dir") + 1]
        recipe = next(arg for arg in argv if arg.startswith("recipes/stage"))
        assert parsed["stage"] == int(Path(recipe).name[5]), recipe
