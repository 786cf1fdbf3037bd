"""PatentLMM's prompt formats (chat templates), the prompts and completions rendered from them, description escaping."""

from __future__ import annotations

import functools
from typing import Any

from .constants import DEFAULT_IMAGE_TOKEN, DESCRIPTION_TYPES

__all__ = [
    "CHAT_TEMPLATES",
    "DEFAULT_PROMPT_FORMAT",
    "PROMPT_FORMATS",
    "VICUNA_SYSTEM",
    "build_completion",
    "build_messages",
    "build_prompt",
    "build_target",
    "escape_description",
    "instruction",
    "render_chat",
    "tokenize_prompt",
    "unescape_description",
]

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# Strings of the LLaVA code base that a description must never contain verbatim (docs/model.md, "Descriptions").
_RESERVED = (DEFAULT_IMAGE_TOKEN, "<im_patch>", "<im_start>", "<im_end>", "<image-placeholder>")
_END_OF_TURN = "</s>"  # LLaMA's end-of-sequence token, written after each answer by the templates

# The chat templates (Jinja), named after the prompt formats, are the one definition of each format. transformers'
# renderer renders them: here for `build_prompt` and `build_target` (training rows and inference), in the processor's
# `apply_chat_template`, and in vLLM's chat (from the saved `chat_template.jinja`). Message content may be a string or
# a list of {"type": "image"} / {"type": "text", "text": ...} parts.
_RENDER_CONTENT = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}" + DEFAULT_IMAGE_TOKEN + "{{ sep }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)
CHAT_TEMPLATES = {
    # Starts with `<s> ` (vLLM tokenizes chat prompts without adding special tokens; the processor then adds none
    # either): `<s> A chat` tokenizes as `A chat` does after the added `<s>`, `<s>A chat` would not (`A` != `▁A`).
    "vicuna_v1": (  # stage 2 and inference; the processor's default template
        "{%- set sep = '\\n' -%}" + _RENDER_CONTENT + "{%- if bos_token -%}{{ bos_token + ' ' }}{%- endif -%}"
        + VICUNA_SYSTEM + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' %} USER: {{ render(message['content']) }}"
        "{%- elif message['role'] == 'assistant' %} ASSISTANT: {{ render(message['content']) }}" + _END_OF_TURN
        + "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt %} ASSISTANT:{% endif -%}"
    ),
    "plain": (  # stage 1
        "{%- set sep = '' -%}" + _RENDER_CONTENT + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{%- for part in message['content'] if part is mapping "
        "and part['type'] == 'image' -%}" + DEFAULT_IMAGE_TOKEN + "{%- endfor -%}"
        "{%- elif message['role'] == 'assistant' -%}{{ render(message['content']) }}{{ '\\n' }}"
        "{%- endif -%}{%- endfor -%}"
    ),
    "original_inference": (  # the original inference script's prompt
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{%- for part in message['content'] if part is mapping and part['type'] == 'image' -%}"
        "{{ '" + DEFAULT_IMAGE_TOKEN + "\\n' }}{%- endfor -%}"
        "{%- for part in message['content'] if part is mapping and part['type'] == 'text' -%}"
        "{{ 'USER: ' + part['text'] + '\\n' }}{%- endfor -%}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{%- for part in message['content'] -%}{{ 'ASSISTANT: ' + part['text'] + '" + _END_OF_TURN + "' }}"
        "{%- endfor -%}{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
    ),
}
PROMPT_FORMATS = tuple(CHAT_TEMPLATES)
DEFAULT_PROMPT_FORMAT = PROMPT_FORMATS[0]  # saved as the processor's `chat_template.jinja`


def instruction(desc_type: str) -> str:
    """The user instruction for `desc_type` (one of `DESCRIPTION_TYPES`)."""
    if desc_type not in DESCRIPTION_TYPES:
        raise ValueError(f"desc_type must be one of {DESCRIPTION_TYPES}, got {desc_type!r}.")
    return f"Write a {desc_type} description for this patent image."


def build_messages(desc_type: str, description: str | None = None) -> list[dict]:
    """A conversation in TRL's format: one user turn (the figure and the instruction), and the answer if given."""
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction(desc_type)}]},
    ]
    if description is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": description}]})
    return messages


def render_chat(
    messages: list[dict],
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
    add_generation_prompt: bool = False,
    bos_token: str = "",
) -> str:
    """`messages` rendered by the chat template of `prompt_format` with transformers' renderer, as
    `apply_chat_template(tokenize=False)` renders them (`bos_token=""`: without the `<s> ` that the `vicuna_v1`
    template starts with for vLLM)."""
    from transformers.utils.chat_template_utils import render_jinja_template  # 1 s of imports, on first use

    if prompt_format not in CHAT_TEMPLATES:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}.")
    rendered, _ = render_jinja_template(
        conversations=[messages],
        chat_template=CHAT_TEMPLATES[prompt_format],
        add_generation_prompt=add_generation_prompt,
        bos_token=bos_token,
    )
    return rendered[0]


def build_prompt(desc_type: str, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> str:
    """The text before the description (one `<image>`, not yet expanded); the model continues from its end. Training
    rows (TRL's `prompt`) and inference both take it from here."""
    return render_chat(build_messages(desc_type), prompt_format, add_generation_prompt=True)


def build_completion(
    description: str, prompt_format: str = DEFAULT_PROMPT_FORMAT, end_token: str = _END_OF_TURN
) -> str:
    """TRL's `completion` of a training row for the raw `description`: escaped (`escape_description`), what the
    chat template writes after an answer (`build_target`), then the decoder's `end_token`."""
    return build_target(escape_description(description), prompt_format) + end_token


def build_target(description: str, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> str:
    """The text the model learns to write after the prompt: the description and what the chat template writes after
    it (`"\\n"` in `plain`), without the end-of-sequence token. The word boundary the template writes before it is
    left out: the decoder's tokenizer adds it itself."""
    return description + _after_answer(prompt_format)


@functools.lru_cache(maxsize=len(CHAT_TEMPLATES))
def _after_answer(prompt_format: str) -> str:
    """What the chat template of `prompt_format` writes after an answer, its end-of-turn token excepted."""
    marker = "\x00"  # a character no template writes
    conversation = [
        {"role": "user", "content": [{"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": marker}]},
    ]
    return render_chat(conversation, prompt_format).split(marker)[1].removesuffix(_END_OF_TURN)


def tokenize_prompt(tokenizer: Any, prompt: str, image_token: str = DEFAULT_IMAGE_TOKEN) -> list[int]:
    """Token ids of `prompt` as the original tokenised it, each `image_token` kept as one id (not yet expanded).

    The original's `tokenizer_image_token` (`finetuned_inference.py:28-49`, `llava/mm_utils.py:43-64`, used by its
    training and inference alike) splits the prompt at `<image>`, tokenises every chunk on its own (special tokens
    added) and keeps only the first chunk's BOS. A chunk tokenised on its own starts a new SentencePiece word, so the
    text after the image begins with `▁` (`\\nUSER` -> `▁`, `<0x0A>`, `USER`) whatever the tokenizer's `legacy`
    setting; tokenising the whole prompt at once would drop that `▁` when `legacy=False`.
    """
    image_id = tokenizer.convert_tokens_to_ids(image_token)
    chunks = [tokenizer(chunk, add_special_tokens=True)["input_ids"] for chunk in prompt.split(image_token)]
    bos = tokenizer.bos_token_id
    drop_bos = bos is not None and bool(chunks[0]) and chunks[0][0] == bos
    ids = list(chunks[0])
    for chunk in chunks[1:]:
        ids.append(image_id)
        ids.extend(chunk[1:] if drop_bos and chunk[:1] == [bos] else chunk)
    return ids


def escape_description(text: str) -> str:
    """Escapes a description as the released LLaVA export does: every `<` -> `[[` and `>` -> `]]`.

    This covers the reserved strings (`<image>` -> `[[image]]`, `<im_patch>`, ...) as well, so a description can
    never collide with a placeholder token.
    """
    for reserved in _RESERVED:
        text = text.replace(reserved, "[[" + reserved[1:-1] + "]]")
    return text.replace("<", "[[").replace(">", "]]")


def unescape_description(text: str) -> str:
    """Inverse of `escape_description` (exact unless the original text itself contained `[[` or `]]`)."""
    return text.replace("[[", "<").replace("]]", ">")
