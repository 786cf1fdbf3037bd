"""`processing/prompts.py`: the three prompt formats (exact strings), their chat templates rendered by the real
processor, the original's prompt tokenisation, and the description escaping (docs/model.md, "Prompt formats")."""

from __future__ import annotations

import pytest

from processing import PatentLMMProcessor
from processing.constants import DESCRIPTION_TYPES, IGNORE_INDEX
from processing.prompts import (
    CHAT_TEMPLATES,
    PROMPT_FORMATS,
    build_completion,
    build_messages,
    build_prompt,
    build_target,
    escape_description,
    instruction,
    tokenize_prompt,
    unescape_description,
)

# Written out from the formats of the original (docs/model.md, "Prompt formats"), not from the module's constants.
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
EXPECTED_PROMPTS = {
    ("brief", "vicuna_v1"): SYSTEM + " USER: <image>\nWrite a brief description for this patent image. ASSISTANT:",
    ("detailed", "vicuna_v1"): SYSTEM
    + " USER: <image>\nWrite a detailed description for this patent image. ASSISTANT:",
    ("brief", "plain"): "<image>",
    ("detailed", "plain"): "<image>",
    ("brief", "original_inference"): "<image>\nUSER: Write a brief description for this patent image.\nASSISTANT:",
    ("detailed", "original_inference"): (
        "<image>\nUSER: Write a detailed description for this patent image.\nASSISTANT:"
    ),
}
# The `chat_template` argument each format is rendered with: none for the default (vicuna_v1), else its name.
CHAT_TEMPLATE_ARGUMENT = {"vicuna_v1": None, "plain": "plain", "original_inference": "original_inference"}
# The default (Vicuna v1) template starts with the decoder's `<s> `, for vLLM's chat (the processor adds no second).
RENDERED_PREFIX = {"vicuna_v1": "<s> ", "plain": "", "original_inference": ""}
CASES = sorted(EXPECTED_PROMPTS)
CASE_IDS = [f"{t}-{f}" for t, f in CASES]


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def _render(processor, messages, prompt_format, **kwargs) -> str:
    name = CHAT_TEMPLATE_ARGUMENT[prompt_format]
    if name is not None:
        kwargs["chat_template"] = name
    return processor.apply_chat_template(messages, tokenize=False, **kwargs)


# ---------------------------------------------------------------------------------------------- build_prompt


def test_formats_and_types_are_the_documented_ones():
    assert PROMPT_FORMATS == ("vicuna_v1", "plain", "original_inference")
    assert DESCRIPTION_TYPES == ("brief", "detailed")
    assert tuple(CHAT_TEMPLATES) == PROMPT_FORMATS  # each template is named after its format


@pytest.mark.parametrize(("desc_type", "prompt_format"), CASES, ids=CASE_IDS)
def test_build_prompt_exact_strings(desc_type, prompt_format):
    assert build_prompt(desc_type, prompt_format) == EXPECTED_PROMPTS[desc_type, prompt_format]


def test_build_prompt_defaults_to_vicuna_v1():
    assert build_prompt("brief") == EXPECTED_PROMPTS["brief", "vicuna_v1"]
    assert build_prompt("detailed").count("<image>") == 1


def test_instruction_text():
    assert instruction("brief") == "Write a brief description for this patent image."
    assert instruction("detailed") == "Write a detailed description for this patent image."


@pytest.mark.parametrize("bad_type", ["short", "Brief", "", None])
def test_unknown_description_type_is_rejected(bad_type):
    with pytest.raises(ValueError, match=r"desc_type must be one of \('brief', 'detailed'\)"):
        build_prompt(bad_type)
    with pytest.raises(ValueError, match="desc_type"):
        instruction(bad_type)
    with pytest.raises(ValueError, match="desc_type"):
        build_messages(bad_type)


@pytest.mark.parametrize("bad_format", ["chatml", "vicuna", "Plain", ""])
def test_unknown_prompt_format_is_rejected(bad_format):
    with pytest.raises(ValueError, match=rf"prompt_format must be one of .*got {bad_format!r}"):
        build_prompt("brief", bad_format)
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        build_target("A description.", bad_format)


def test_build_target_per_format():
    assert build_target("FIG. 1 is a view.", "plain") == "FIG. 1 is a view.\n"
    assert build_target("FIG. 1 is a view.", "vicuna_v1") == "FIG. 1 is a view."
    assert build_target("FIG. 1 is a view.", "original_inference") == "FIG. 1 is a view."
    assert build_target("FIG. 1 is a view.") == "FIG. 1 is a view."


def test_build_completion_is_the_escaped_description_then_the_target_then_the_end_token():
    assert build_completion("FIG. 1 is a <view>.", "plain") == "FIG. 1 is a [[view]].\n</s>"
    assert build_completion("FIG. 1 is a <view>.") == "FIG. 1 is a [[view]].</s>"
    assert build_completion("FIG. 1.", "original_inference", end_token="<|endoftext|>") == "FIG. 1.<|endoftext|>"


def test_the_old_default_template_name_still_renders_vicuna_v1_with_a_warning(processor):
    with pytest.warns(FutureWarning, match="'vicuna_v1'"):
        rendered = processor.apply_chat_template(
            build_messages("brief"), chat_template="default", add_generation_prompt=True
        )
    assert rendered == "<s> " + EXPECTED_PROMPTS["brief", "vicuna_v1"]


def test_build_messages_structure():
    assert build_messages("brief") == [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "Write a brief description for this patent image."},
            ],
        }
    ]
    with_answer = build_messages("detailed", "The hinge.")
    assert with_answer[0]["content"][1]["text"] == "Write a detailed description for this patent image."
    assert with_answer[1] == {"role": "assistant", "content": [{"type": "text", "text": "The hinge."}]}


# ---------------------------------------------------------------------------------------------- chat templates


def test_processor_carries_the_three_templates(processor):
    assert processor.chat_templates == CHAT_TEMPLATES
    assert processor.chat_template == CHAT_TEMPLATES["vicuna_v1"]  # one string, as vLLM reads it


@pytest.mark.parametrize(("desc_type", "prompt_format"), CASES, ids=CASE_IDS)
def test_chat_template_generation_prompt_equals_build_prompt(processor, desc_type, prompt_format):
    rendered = _render(processor, build_messages(desc_type), prompt_format, add_generation_prompt=True)
    expected = RENDERED_PREFIX[prompt_format] + EXPECTED_PROMPTS[desc_type, prompt_format]
    assert rendered == RENDERED_PREFIX[prompt_format] + build_prompt(desc_type, prompt_format) == expected


def test_default_chat_template_is_vicuna_v1_with_default_call(processor):
    """`apply_chat_template` without a name uses the `default` (Vicuna v1) template."""
    rendered = processor.apply_chat_template(build_messages("brief"), add_generation_prompt=True)
    assert rendered == "<s> " + EXPECTED_PROMPTS["brief", "vicuna_v1"]


def test_chat_template_without_generation_prompt_has_no_assistant_tag(processor):
    rendered = _render(processor, build_messages("brief"), "vicuna_v1")
    assert rendered == "<s> " + EXPECTED_PROMPTS["brief", "vicuna_v1"].removesuffix(" ASSISTANT:")
    assert _render(processor, build_messages("brief"), "original_inference") == (
        "<image>\nUSER: Write a brief description for this patent image.\n"
    )


@pytest.mark.parametrize("desc_type", DESCRIPTION_TYPES)
def test_training_conversations_render_prompt_then_target(processor, desc_type):
    """With the answer: Vicuna v1 ends `ASSISTANT: <description></s>`, plain is `<image><description>\\n`."""
    description = "FIG. 8 is a view of FIG. 7 in a compressed working position."
    messages = build_messages(desc_type, description)
    assert _render(processor, messages, "vicuna_v1") == (
        "<s> " + build_prompt(desc_type, "vicuna_v1") + " " + build_target(description, "vicuna_v1") + "</s>"
    )
    assert _render(processor, messages, "plain") == (
        build_prompt(desc_type, "plain") + build_target(description, "plain")
    )
    assert _render(processor, messages, "plain") == "<image>" + description + "\n"
    assert _render(processor, messages, "original_inference") == (
        build_prompt(desc_type, "original_inference") + " " + description + "</s>"
    )


def test_chat_template_accepts_string_content(processor):
    messages = [
        {"role": "user", "content": "<image>\nWrite a brief description for this patent image."},
        {"role": "assistant", "content": "A view."},
    ]
    assert processor.apply_chat_template(messages) == ("<s> " + EXPECTED_PROMPTS["brief", "vicuna_v1"] + " A view.</s>")


def test_rendered_prompt_tokenises_to_one_image_token(processor):
    for prompt_format in PROMPT_FORMATS:
        text = _render(processor, build_messages("brief"), prompt_format, add_generation_prompt=True)
        ids = processor.tokenizer(text)["input_ids"]
        assert ids.count(processor.image_token_id) == 1, prompt_format


# ---------------------------------------------------------------------------------------------- prompt ids

SENTINEL = -200  # the original's IMAGE_TOKEN_INDEX
DESCRIPTION = "FIG. 3 is a perspective view of the hinge assembly (12) of FIG. 1."


def _original_ids(tokenizer, prompt: str, image_token_id: int) -> list[int]:
    """The rule of the original's `tokenizer_image_token` (`finetuned_inference.py:28-49`), written from its
    description: split at `<image>`, tokenise every chunk alone, keep the BOS of the first chunk only (the original
    strips the first id of every later chunk when the first chunk starts with BOS), a -200 sentinel between chunks;
    the sentinel then becomes this package's `<image>` id."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    skip = 1 if chunks[0] and chunks[0][0] == tokenizer.bos_token_id else 0
    ids = chunks[0]
    for chunk in chunks[1:]:
        ids = ids + [SENTINEL] + chunk[skip:]
    return [image_token_id if token == SENTINEL else token for token in ids]


def _collapse_image_run(ids: list[int], image_token_id: int) -> list[int]:
    """Prompt ids with the expanded placeholders folded back into one `<image>`."""
    return [t for i, t in enumerate(ids) if t != image_token_id or i == 0 or ids[i - 1] != image_token_id]


@pytest.fixture(scope="module", params=[True, False], ids=["legacy", "non-legacy"])
def sentencepiece_processor(request, tiny, tmp_path_factory):
    """The tiny processor with its decoder tokenizer loaded under SentencePiece's `legacy` setting (in memory: a
    saved tokenizer reloads with transformers' current default)."""
    import shutil

    from transformers import LlamaTokenizerFast

    from patentlmm.assembly.components import prepare_decoder_tokenizer
    from patentlmm.assembly.tiny import _package_file

    folder = tmp_path_factory.mktemp("sentencepiece")
    shutil.copy(_package_file("mistral_common", "data/tokenizer.model.v1"), folder / "tokenizer.model")
    tokenizer = LlamaTokenizerFast.from_pretrained(
        folder, legacy=request.param, add_bos_token=True, add_eos_token=False
    )
    prepare_decoder_tokenizer(tokenizer)
    tiny_processor = tiny[1]
    return PatentLMMProcessor(
        tiny_processor.image_processor,
        tokenizer,
        tiny_processor.ocr_tokenizer,
        num_image_patches=tiny_processor.num_image_patches,
        max_ocr_tokens=tiny_processor.max_ocr_tokens,
    )


@pytest.mark.parametrize(("desc_type", "prompt_format"), CASES, ids=CASE_IDS)
def test_prompt_ids_follow_the_original_rule(sentencepiece_processor, figures, desc_type, prompt_format):
    processor = sentencepiece_processor
    prompt = build_prompt(desc_type, prompt_format)
    expected = _original_ids(processor.tokenizer, prompt, processor.image_token_id)
    assert tokenize_prompt(processor.tokenizer, prompt) == expected
    figure = next(iter(figures.values()))["path"]
    inputs = processor(images=figure, text=prompt, ocr_words=[["FIG.", "3"]], ocr_boxes=[[[1, 1, 9, 9]] * 2])
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(processor.image_token_id) == processor.num_image_features(inputs["ocr_input_ids"].shape[1])
    assert _collapse_image_run(ids, processor.image_token_id) == expected
    if prompt_format != "plain":  # the text after the image starts a SentencePiece word: `▁` then the newline
        after = expected[expected.index(processor.image_token_id) + 1 :]
        assert processor.tokenizer.convert_ids_to_tokens(after[:2]) == ["▁", "<0x0A>"]


def test_whole_prompt_tokenisation_would_lose_the_word_start():
    """Why the rule matters: tokenising the whole prompt at once drops the `▁` after `<image>` with `legacy=False`
    (the setting transformers 5 reloads saved LLaMA tokenizers with), so the ids would differ from the original's."""
    import shutil
    import tempfile

    from transformers import LlamaTokenizerFast

    from patentlmm.assembly.components import prepare_decoder_tokenizer
    from patentlmm.assembly.tiny import _package_file

    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(_package_file("mistral_common", "data/tokenizer.model.v1"), f"{folder}/tokenizer.model")
        tokenizer = prepare_decoder_tokenizer(LlamaTokenizerFast.from_pretrained(folder, legacy=False))
    prompt = build_prompt("brief", "original_inference")
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    expected = _original_ids(tokenizer, prompt, image_id)
    assert tokenize_prompt(tokenizer, prompt) == expected != tokenizer(prompt).input_ids


@pytest.mark.parametrize("desc_type", DESCRIPTION_TYPES)
def test_training_ids_and_labels_equal_the_originals(sentencepiece_processor, figures, desc_type):
    """Stage 2 (Vicuna v1): the original tokenises the whole conversation `prompt + " " + answer + "</s>"` with its
    rule (`llava/train/train.py:438`) and masks everything up to `ASSISTANT:` (`train.py:455-481`); stage 1 (plain)
    tokenises `<image>` + answer + "\n" and masks `<s><image>` (`train.py:563-582`). The package builds the same ids
    from prompt + suffix; its plain labels end with one `</s>` more (see the README)."""
    processor = sentencepiece_processor
    image_id = processor.image_token_id
    figure = next(iter(figures.values()))["path"]
    ocr = {"ocr_words": [["FIG.", "3"]], "ocr_boxes": [[[1, 1, 9, 9]] * 2]}

    prompt = build_prompt(desc_type, "vicuna_v1")
    inputs = processor(images=figure, text=prompt, suffix=build_target(DESCRIPTION, "vicuna_v1"), **ocr)
    ids = inputs["input_ids"][0].tolist()
    conversation = prompt + " " + DESCRIPTION + "</s>"
    original = _original_ids(processor.tokenizer, conversation, image_id)
    assert _collapse_image_run(ids, image_id) == original
    instruction_part = conversation.split(" ASSISTANT: ")[0] + " ASSISTANT: "
    masked = 1 + len(_original_ids(processor.tokenizer, instruction_part, image_id)) - 2  # train.py:460-478
    labels = [label for label in inputs["labels"][0].tolist() if label != IGNORE_INDEX]
    assert labels == original[masked:]

    plain = build_prompt(desc_type, "plain")
    inputs = processor(images=figure, text=plain, suffix=build_target(DESCRIPTION, "plain"), **ocr)
    original = _original_ids(processor.tokenizer, "<image>" + DESCRIPTION + "\n", image_id)
    ids = _collapse_image_run(inputs["input_ids"][0].tolist(), image_id)
    assert ids == original + [processor.tokenizer.eos_token_id]
    labels = [label for label in inputs["labels"][0].tolist() if label != IGNORE_INDEX]
    assert labels == original[2:] + [processor.tokenizer.eos_token_id]


# ---------------------------------------------------------------------------------------------- escaping


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<image>", "[[image]]"),
        ("<im_patch><im_start><im_end>", "[[im_patch]][[im_start]][[im_end]]"),
        ("<image-placeholder>", "[[image-placeholder]]"),
        ("a < b > c", "a [[ b ]] c"),
        ("x<<y>>", "x[[[[y]]]]"),
        ("<b>bold</b> and <image> in FIG. 3", "[[b]]bold[[/b]] and [[image]] in FIG. 3"),
        ("no brackets here (12)", "no brackets here (12)"),
        ("", ""),
    ],
)
def test_escape_description(raw, escaped):
    assert escape_description(raw) == escaped
    assert "<" not in escape_description(raw) and ">" not in escape_description(raw)


@pytest.mark.parametrize(
    "text",
    [
        "<image>",
        "FIG. 8 <image> shows the piston (2) < guide > cylinder (5).",
        "<im_patch><im_start><im_end><image-placeholder>",
        "angles between 10° and 40°, <, >, <>, ><",
        "plain text",
    ],
)
def test_escape_round_trip(text):
    assert unescape_description(escape_description(text)) == text


def test_unescape_turns_double_brackets_back():
    assert unescape_description("[[image]] and [[b]]x[[/b]]") == "<image> and <b>x</b>"
    assert unescape_description("[1] and ]x[") == "[1] and ]x["  # single brackets are not escapes


def test_real_descriptions_round_trip(figures):
    for entry in figures.values():
        for key in ("brief_description", "detailed_description"):
            assert unescape_description(escape_description(entry[key])) == entry[key]


def test_escaped_description_cannot_produce_the_image_token(processor):
    """The point of escaping: a description that mentions `<image>` must not create a placeholder token."""
    text = "The display shows an <image> of the seeding train."
    assert processor.image_token_id in processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert processor.image_token_id not in processor.tokenizer(escape_description(text))["input_ids"]
