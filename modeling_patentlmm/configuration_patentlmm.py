"""PatentLMMConfig: a PatentMME (LayoutLMv3) encoder, a projector and a causal-LM decoder (remote code)."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, LayoutLMv3Config

try:  # transformers >= 5
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x
    from transformers import PretrainedConfig as PreTrainedConfig

__all__ = ["PatentLMMConfig", "PATENTMME_LARGE"]

# PatentMME is LayoutLMv3-large (microsoft/layoutlmv3-large's config) pretrained on patent figures at 384 px with
# 16 px patches (24 x 24 = 576 patches), the values the original sets on that config (`PatentMME/model.py:19-21`,
# `llava/model/multimodal_encoder/patentmme_enocder.py:32-33`). Where LayoutLMv3-large differs from
# `LayoutLMv3Config()`'s (base) defaults, the value is spelled out: its layout embeddings are 4 * 171 + 2 * 170 = 1024
# wide (the hidden size, as LayoutLMv3's embeddings require) and it has one token type, like RoBERTa.
PATENTMME_LARGE: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "coordinate_size": 171,
    "shape_size": 170,
    "type_vocab_size": 1,
    "input_size": 384,
    "patch_size": 16,
    "vocab_size": 50265,
    "max_position_embeddings": 514,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

PROJECTOR_TYPES = ("mlp2x_gelu", "linear")
# "patch" drops the first encoder position (the OCR <s> token), exactly as the original
# LLaVA-based code did; "cls_patch" keeps every position.
FEATURE_SELECT_STRATEGIES = ("patch", "cls_patch")


class PatentLMMConfig(PreTrainedConfig):
    r"""
    Configuration of [`PatentLMMForConditionalGeneration`].

    Args:
        vision_config (`dict` or `LayoutLMv3Config`, *optional*):
            The PatentMME encoder. Defaults to LayoutLMv3-large at `input_size=384`, `patch_size=16`.
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Any causal-LM config (a dict needs `model_type`). Defaults to a LLaMA-2-7B-shaped `LlamaConfig`
            whose vocabulary has one extra row for `<image>` (32,001).
        projector_type (`str`, *optional*, defaults to `"mlp2x_gelu"`):
            `"mlp2x_gelu"` (Linear, GELU, Linear) or `"linear"`.
        vision_feature_layer (`int`, *optional*, defaults to -1):
            Which output of the encoder feeds the projector, as an index into transformers' `LayoutLMv3Model`
            `hidden_states` (`0`: the embeddings, `k`: layer k, `-1`: the last layer, `-2`: the one before).
            The original asks for `hidden_states[-2]` (`patentmme_enocder.py:48`), but its vendored LayoutLMv3
            returns the encoder's whole output object as `hidden_states` (`modelling_layoutv3.py:1011-1028`), whose
            index -2 is the *last* layer's output: the official weights were trained on it, so the original is -1
            here (`convert-original` writes -1). New models default to -1 as well, so that training with this package
            follows the paper's recipe and its checkpoints stay interchangeable with converted ones.
        vision_feature_select_strategy (`str`, *optional*, defaults to `"patch"`):
            `"patch"` drops the first encoder position (T_ocr - 1 + 577 features, the original's choice);
            `"cls_patch"` keeps all of them (T_ocr + 577 features).
        image_token_id (`int`, *optional*, defaults to 32000):
            Id of the `<image>` placeholder in the decoder's vocabulary.
        max_ocr_tokens (`int`, *optional*, defaults to 512):
            Longest OCR token sequence the encoder accepts.
        freeze_vision_tower (`bool`, *optional*, defaults to `True`):
            Whether the encoder's weights are frozen when the model is built.
    """

    model_type = "patentlmm"
    sub_configs = {"vision_config": LayoutLMv3Config, "text_config": AutoConfig}

    def __init__(
        self,
        vision_config: dict | LayoutLMv3Config | None = None,
        text_config: dict | PreTrainedConfig | None = None,
        projector_type: str = "mlp2x_gelu",
        vision_feature_layer: int = -1,
        vision_feature_select_strategy: str = "patch",
        image_token_id: int = 32000,
        max_ocr_tokens: int = 512,
        freeze_vision_tower: bool = True,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        vision_config, text_config = _sub_configs(vision_config, text_config)
        _validate(
            vision_config,
            text_config,
            projector_type=projector_type,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            image_token_id=image_token_id,
            max_ocr_tokens=max_ocr_tokens,
        )
        self.vision_config = vision_config
        self.text_config = text_config
        self.projector_type = projector_type
        self.vision_feature_layer = vision_feature_layer
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token_id = image_token_id
        self.max_ocr_tokens = max_ocr_tokens
        self.freeze_vision_tower = freeze_vision_tower
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def num_image_patches(self) -> int:
        """Visual positions of the encoder: the visual CLS token plus (input_size / patch_size) ** 2 patches."""
        return (self.vision_config.input_size // self.vision_config.patch_size) ** 2 + 1


def _sub_configs(
    vision_config: dict | LayoutLMv3Config | None, text_config: dict | PreTrainedConfig | None
) -> tuple[LayoutLMv3Config, PreTrainedConfig]:
    """The encoder's and the decoder's configs from dicts (or `None`: PatentMME and LLaMA-2-7B), as config objects."""
    if vision_config is None:
        vision_config = dict(PATENTMME_LARGE)
    if isinstance(vision_config, dict):
        vision_config = LayoutLMv3Config(**{k: v for k, v in vision_config.items() if k != "model_type"})
    if text_config is None:
        # LLaMA-2-7B (Vicuna-7B v1.5) with one extra row for the <image> token.
        text_config = {"model_type": "llama", "vocab_size": 32001}
    if isinstance(text_config, dict):
        text_config = dict(text_config)
        model_type = text_config.pop("model_type", None)
        if model_type is None:
            raise ValueError("text_config needs a 'model_type' (for example 'llama').")
        text_config = AutoConfig.for_model(model_type, **text_config)
    return vision_config, text_config


def _validate(
    vision_config: LayoutLMv3Config,
    text_config: PreTrainedConfig,
    *,
    projector_type: str,
    vision_feature_layer: int,
    vision_feature_select_strategy: str,
    image_token_id: int,
    max_ocr_tokens: int,
) -> None:
    """Raises `ValueError` naming the first setting that does not fit the encoder or the decoder."""
    if projector_type not in PROJECTOR_TYPES:
        raise ValueError(f"projector_type must be one of {PROJECTOR_TYPES}, got {projector_type!r}.")
    if vision_feature_select_strategy not in FEATURE_SELECT_STRATEGIES:
        raise ValueError(
            f"vision_feature_select_strategy must be one of {FEATURE_SELECT_STRATEGIES}, "
            f"got {vision_feature_select_strategy!r}."
        )
    num_encoder_outputs = vision_config.num_hidden_layers + 1  # embeddings + one per layer
    if not -num_encoder_outputs <= vision_feature_layer < num_encoder_outputs:
        raise ValueError(
            f"vision_feature_layer={vision_feature_layer} is out of range for an encoder with "
            f"{vision_config.num_hidden_layers} layers ({num_encoder_outputs} hidden states)."
        )
    layout_width = 4 * vision_config.coordinate_size + 2 * vision_config.shape_size
    if layout_width != vision_config.hidden_size:
        raise ValueError(
            f"vision_config: 4 * coordinate_size + 2 * shape_size = 4 * {vision_config.coordinate_size} + 2 * "
            f"{vision_config.shape_size} = {layout_width} must equal hidden_size={vision_config.hidden_size} "
            "(LayoutLMv3 adds its box embeddings to the token embeddings; LayoutLMv3-large has 171 and 170)."
        )
    if vision_config.input_size % vision_config.patch_size != 0:
        raise ValueError(
            f"vision_config.input_size={vision_config.input_size} is not a multiple of "
            f"vision_config.patch_size={vision_config.patch_size}."
        )
    if not 2 <= max_ocr_tokens <= vision_config.max_position_embeddings - 2:
        raise ValueError(
            f"max_ocr_tokens={max_ocr_tokens} must be in [2, {vision_config.max_position_embeddings - 2}] "
            f"(the encoder's max_position_embeddings={vision_config.max_position_embeddings} minus 2)."
        )
    if not 0 <= image_token_id < text_config.vocab_size:
        raise ValueError(
            f"image_token_id={image_token_id} is outside the decoder vocabulary "
            f"(vocab_size={text_config.vocab_size})."
        )


PatentLMMConfig.register_for_auto_class()
