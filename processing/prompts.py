"""Prompt formats of PatentLMM (SPEC §4), their chat templates, and the description escaping of the released data.

- `"vicuna_v1"`: stage-2 format. `SYSTEM USER: <image>\\nWrite a brief description for this patent image. ASSISTANT:`
  then ` <description></s>`.
- `"plain"`: stage-1 format. `<image>` then `<description>\\n`.
- `"original_inference"`: the prompt of the original inference script,
  `<image>\\nUSER: Write a brief description for this patent image.\\nASSISTANT:`.

Prompts are tokenised with the original's rule (`tokenize_prompt`), in training and at inference alike.
"""

from __future__ import annotations

from typing import Any

from .constants import DEFAULT_IMAGE_TOKEN, DESCRIPTION_TYPES

__all__ = [
    "CHAT_TEMPLATES",
    "PROMPT_FORMATS",
    "VICUNA_SYSTEM",
    "build_messages",
    "build_prompt",
    "build_target",
    "escape_description",
    "instruction",
    "tokenize_prompt",
    "unescape_description",
]

PROMPT_FORMATS = ("vicuna_v1", "plain", "original_inference")
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# Strings of the LLaVA code base that a description must never contain verbatim (SPEC §2).
_RESERVED = ("<image>", "<im_patch>", "<im_start>", "<im_end>", "<image-placeholder>")


def instruction(desc_type: str) -> str:
    """The user instruction for `desc_type` (`"brief"` or `"detailed"`)."""
    if desc_type not in DESCRIPTION_TYPES:
        raise ValueError(f"desc_type must be one of {DESCRIPTION_TYPES}, got {desc_type!r}.")
    return f"Write a {desc_type} description for this patent image."


def build_prompt(desc_type: str, prompt_format: str = "vicuna_v1") -> str:
    """The text before the description (one `<image>`, not yet expanded); the model continues from its end."""
    text = instruction(desc_type)
    if prompt_format == "vicuna_v1":
        return f"{VICUNA_SYSTEM} USER: {DEFAULT_IMAGE_TOKEN}\n{text} ASSISTANT:"
    if prompt_format == "plain":
        return DEFAULT_IMAGE_TOKEN
    if prompt_format == "original_inference":
        return f"{DEFAULT_IMAGE_TOKEN}\nUSER: {text}\nASSISTANT:"
    raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}.")


def build_target(description: str, prompt_format: str = "vicuna_v1") -> str:
    """The text the model learns to write after the prompt, without the end-of-sequence token.

    The decoder's tokenizer adds the leading word boundary itself; `plain` ends with a newline as in stage 1.
    """
    if prompt_format == "plain":
        return description + "\n"
    if prompt_format in ("vicuna_v1", "original_inference"):
        return description
    raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}.")


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


def build_messages(desc_type: str, description: str | None = None) -> list[dict]:
    """A conversation in TRL's format: one user turn (the figure and the instruction), and the answer if given."""
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction(desc_type)}]},
    ]
    if description is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": description}]})
    return messages


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


# Chat templates (Jinja) rendering `build_messages` conversations into the formats above. Message content may be a
# string or a list of {"type": "image"} / {"type": "text", "text": ...} parts.
_RENDER_CONTENT = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}<image>{{ sep }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)
CHAT_TEMPLATES = {
    # Starts with `<s> ` (vLLM tokenizes chat prompts without adding special tokens; the processor then adds none
    # either): `<s> A chat` tokenizes as `A chat` does after the added `<s>`, `<s>A chat` would not (`A` != `▁A`).
    "default": (
        "{%- set sep = '\\n' -%}" + _RENDER_CONTENT + "{%- if bos_token -%}{{ bos_token + ' ' }}{%- endif -%}"
        + VICUNA_SYSTEM + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' %} USER: {{ render(message['content']) }}"
        "{%- elif message['role'] == 'assistant' %} ASSISTANT: {{ render(message['content']) }}</s>"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt %} ASSISTANT:{% endif -%}"
    ),
    "plain": (
        "{%- set sep = '' -%}" + _RENDER_CONTENT + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{%- for part in message['content'] if part is mapping "
        "and part['type'] == 'image' -%}<image>{%- endfor -%}"
        "{%- elif message['role'] == 'assistant' -%}{{ render(message['content']) }}{{ '\\n' }}"
        "{%- endif -%}{%- endfor -%}"
    ),
    "original_inference": (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{%- for part in message['content'] if part is mapping and part['type'] == 'image' -%}"
        "{{ '<image>\\n' }}{%- endfor -%}"
        "{%- for part in message['content'] if part is mapping and part['type'] == 'text' -%}"
        "{{ 'USER: ' + part['text'] + '\\n' }}{%- endfor -%}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{%- for part in message['content'] -%}{{ 'ASSISTANT: ' + part['text'] + '</s>' }}{%- endfor -%}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
    ),
}
