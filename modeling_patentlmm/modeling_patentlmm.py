"""PatentLMM: PatentMME (LayoutLMv3) encoder -> projector -> causal-LM decoder, laid out as Llava (docs/model.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers
from torch import nn
from transformers import AutoModel, GenerationMixin, LayoutLMv3Config, LayoutLMv3Model, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast, BaseModelOutputWithPooling, CausalLMOutputWithPast

from .configuration_patentlmm import PatentLMMConfig

__all__ = [
    "PatentLMMBiasTable",
    "PatentLMMCausalLMOutputWithPast",
    "PatentLMMForConditionalGeneration",
    "PatentLMMModel",
    "PatentLMMModelOutputWithPast",
    "PatentLMMPreTrainedModel",
    "PatentLMMProjector",
    "build_vision_tower",
]

_TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])

AUTO_MAP = {
    "AutoConfig": "configuration_patentlmm.PatentLMMConfig",
    "AutoModel": "modeling_patentlmm.PatentLMMModel",
    "AutoModelForVision2Seq": "modeling_patentlmm.PatentLMMForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_patentlmm.PatentLMMForConditionalGeneration",
    "AutoProcessor": "processing_patentlmm.PatentLMMProcessor",
}


@dataclass
class PatentLMMModelOutputWithPast(BaseModelOutputWithPast):
    r"""
    The decoder's outputs (the cache field is `cache` on transformers 5, `past_key_values` on 4.x), plus:

    image_hidden_states (`torch.FloatTensor` of shape `(num_image_features, hidden_size)`, *optional*):
        The projected image features of the whole batch, concatenated sample after sample.
    """

    image_hidden_states: torch.FloatTensor | None = None


@dataclass
class PatentLMMCausalLMOutputWithPast(CausalLMOutputWithPast):
    r"""
    `loss` and `logits` of the LM head plus the decoder's outputs, and:

    image_hidden_states (`torch.FloatTensor` of shape `(num_image_features, hidden_size)`, *optional*):
        The projected image features of the whole batch, concatenated sample after sample.
    """

    image_hidden_states: torch.FloatTensor | None = None


class PatentLMMProjector(nn.Module):
    """Maps encoder features `(N, vision_hidden)` to decoder embeddings `(N, text_hidden)`."""

    def __init__(self, config: PatentLMMConfig):
        super().__init__()
        vision_hidden = config.vision_config.hidden_size
        text_hidden = config.text_config.hidden_size
        self.linear_1 = nn.Linear(vision_hidden, text_hidden)
        if config.projector_type == "mlp2x_gelu":
            self.act = ACT2FN["gelu"]
            self.linear_2 = nn.Linear(text_hidden, text_hidden)
        else:  # "linear"
            self.act = None
            self.linear_2 = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.linear_1(features)
        if self.linear_2 is not None:
            hidden = self.linear_2(self.act(hidden))
        return hidden


class PatentLMMBiasTable(nn.Module):
    """A `(num_heads, num_buckets)` bias table that LayoutLMv3 reads by indexing `.weight` (its relative-position
    biases `rel_pos_bias`, `rel_pos_x_bias`, `rel_pos_y_bias`), never by calling it.

    It holds the very parameter of the `nn.Linear` it stands in for (same name, same checkpoint key), but is not an
    `nn.Linear`: serving engines that swap every `nn.Linear` for their own kernels (vLLM's Transformers backend,
    whose CPU kernels empty `.weight`) leave it alone.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight  # (num_heads, num_buckets)


def build_vision_tower(config: LayoutLMv3Config) -> LayoutLMv3Model:
    """The PatentMME encoder (a `LayoutLMv3Model`) from `config`, as PatentLMM holds it: its relative-position biases
    are `PatentLMMBiasTable`s, and its visual CLS token and position embeddings start from a truncated normal (std
    `config.initializer_range`) instead of LayoutLMv3's zeros, which make a random encoder's visual CLS embedding the
    zero vector and its gradient ~1e5 times too large (docs/model.md, "A random encoder"). Loaded weights replace
    both, so pretrained encoders are unaffected."""
    tower = LayoutLMv3Model(config)
    for name in ("rel_pos_bias", "rel_pos_x_bias", "rel_pos_y_bias"):
        if isinstance(getattr(tower.encoder, name, None), nn.Linear):
            setattr(tower.encoder, name, PatentLMMBiasTable(getattr(tower.encoder, name)))
    if config.visual_embed:
        with torch.no_grad():  # torch.nn.init: skipped while from_pretrained builds the model to load weights into
            nn.init.trunc_normal_(tower.cls_token, std=config.initializer_range)  # (1, 1, C_v)
            nn.init.trunc_normal_(tower.pos_embed, std=config.initializer_range)  # (1, 1 + P, C_v)
    return tower


class PatentLMMPreTrainedModel(PreTrainedModel):
    config_class = PatentLMMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LayoutLMv3Layer"]  # the decoder's own blocks are collected from it
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves safetensors weights, `config.json` with the full `auto_map` and this package's source files."""
        self.config.auto_map = dict(AUTO_MAP)
        if kwargs.get("safe_serialization") is False:
            raise ValueError("PatentLMM saves safetensors only (safe_serialization=True).")
        return super().save_pretrained(save_directory, *args, **kwargs)


class PatentLMMModel(PatentLMMPreTrainedModel):
    """The encoder, the projector and the decoder without its LM head."""

    def __init__(self, config: PatentLMMConfig):
        super().__init__(config)
        self.vision_tower = build_vision_tower(config.vision_config)
        self.multi_modal_projector = PatentLMMProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        if config.freeze_vision_tower:
            self.vision_tower.requires_grad_(False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(
        self,
        pixel_values: torch.FloatTensor,
        ocr_input_ids: torch.LongTensor,
        ocr_bbox: torch.LongTensor,
        ocr_attention_mask: torch.LongTensor | None = None,
        return_dict: bool = False,
    ) -> list[torch.Tensor] | BaseModelOutputWithPooling:
        r"""
        Encodes each figure with its OCR tokens and projects the selected positions.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, input_size, input_size)`)
            ocr_input_ids (`torch.LongTensor` of shape `(batch_size, ocr_length)`): LayoutLMv3 token ids.
            ocr_bbox (`torch.LongTensor` of shape `(batch_size, ocr_length, 4)`): boxes in 0-1000.
            ocr_attention_mask (`torch.LongTensor` of shape `(batch_size, ocr_length)`, *optional*): 1 = real token.
            return_dict (`bool`, defaults to `False`): return a `BaseModelOutputWithPooling` whose `pooler_output`
                is the list below (the form vLLM's Transformers backend asks for), instead of the list itself.

        Returns:
            A list of `batch_size` tensors, the i-th of shape `(n_i - d + num_image_patches, text_hidden)`, where
            `n_i` is the number of real OCR tokens of sample i and `d` is 1 for the `"patch"` strategy, else 0.
        """
        if ocr_attention_mask is None:
            ocr_attention_mask = torch.ones_like(ocr_input_ids)
        encoder_trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision_tower.parameters())
        with torch.set_grad_enabled(encoder_trains):
            outputs = self.vision_tower(
                input_ids=ocr_input_ids,
                bbox=ocr_bbox,
                attention_mask=ocr_attention_mask,
                pixel_values=pixel_values.to(self.vision_tower.dtype),
                output_hidden_states=True,
                return_dict=True,
            )
        hidden = outputs.hidden_states[self.config.vision_feature_layer]  # (B, T_ocr + P, C_v)
        ocr_length = ocr_input_ids.shape[1]
        text_hidden, visual_hidden = hidden[:, :ocr_length], hidden[:, ocr_length:]  # (B, T_ocr, C_v), (B, P, C_v)
        start = 1 if self.config.vision_feature_select_strategy == "patch" else 0
        keep = ocr_attention_mask.bool()
        per_sample = [
            torch.cat([text_hidden[i][keep[i]][start:], visual_hidden[i]], dim=0)  # (n_i - start + P, C_v)
            for i in range(hidden.shape[0])
        ]
        projected = self.multi_modal_projector(torch.cat(per_sample, dim=0))  # (sum_i N_i, C_t)
        features = list(projected.split([f.shape[0] for f in per_sample], dim=0))
        return BaseModelOutputWithPooling(pooler_output=features) if return_dict else features

    def merge_image_features(
        self, input_ids: torch.LongTensor, inputs_embeds: torch.Tensor, image_features: torch.Tensor
    ) -> torch.Tensor:
        """Writes `image_features` `(N, C)` into the `N` placeholder positions of `inputs_embeds` `(B, L, C)`."""
        placeholder = input_ids == self.config.image_token_id  # (B, L)
        num_tokens, num_features = int(placeholder.sum()), image_features.shape[0]
        if num_tokens != num_features:
            raise ValueError(
                f"Image features and image tokens do not match: {num_tokens} <image> placeholder tokens in "
                f"input_ids but {num_features} image features. Build inputs with PatentLMMProcessor, which "
                "expands each <image> into exactly that sample's number of features."
            )
        mask = placeholder.unsqueeze(-1).expand_as(inputs_embeds).to(inputs_embeds.device)  # (B, L, C)
        return inputs_embeds.masked_scatter(mask, image_features.to(inputs_embeds.device, inputs_embeds.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        ocr_input_ids: torch.LongTensor | None = None,
        ocr_bbox: torch.LongTensor | None = None,
        ocr_attention_mask: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> PatentLMMModelOutputWithPast | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Prompt ids in which each figure's `<image>` is already expanded to its feature count.
            pixel_values, ocr_input_ids, ocr_bbox, ocr_attention_mask: see [`~PatentLMMModel.get_image_features`];
                only needed on the step that encodes the figures (the prefill during generation).
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*)
            kwargs: passed unchanged to the decoder (cache, positions, `use_cache`, ...), so the same code runs on
                transformers 4.x (`past_key_values`) and 5.x (`cache`).
            return_dict (`bool`, *optional*): `False` returns the output's `to_tuple()` (vLLM calls it so).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # (B, L, C_t)

        image_features = None
        if pixel_values is not None:
            if ocr_input_ids is None or ocr_bbox is None:
                raise ValueError(
                    "pixel_values were given without ocr_input_ids and ocr_bbox: PatentMME encodes a figure "
                    "together with its OCR tokens (a figure without words still has the two tokens <s></s>)."
                )
            if input_ids is None:
                raise ValueError("Figures can only be merged into input_ids (the placeholders mark their positions).")
            image_features = torch.cat(
                self.get_image_features(pixel_values, ocr_input_ids, ocr_bbox, ocr_attention_mask), dim=0
            )  # (N, C_t)
            inputs_embeds = self.merge_image_features(input_ids, inputs_embeds, image_features)

        outputs = self.language_model(attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)
        output = PatentLMMModelOutputWithPast(**outputs, image_hidden_states=image_features)
        return output.to_tuple() if return_dict is False else output


class PatentLMMForConditionalGeneration(PatentLMMPreTrainedModel, GenerationMixin):
    """PatentLMM with its language-modelling head: `forward` returns logits (and a loss with `labels`); `generate`
    encodes the figures once, on the prefill step, and decodes with the KV cache."""

    _tied_weights_keys = (
        {"lm_head.weight": "model.language_model.embed_tokens.weight"}
        if _TRANSFORMERS_MAJOR >= 5
        else ["lm_head.weight"]
    )

    def __init__(self, config: PatentLMMConfig):
        super().__init__(config)
        self.model = PatentLMMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.lm_head = new_embeddings

    def get_decoder(self) -> nn.Module:
        return self.model.language_model

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        ocr_input_ids: torch.LongTensor | None = None,
        ocr_bbox: torch.LongTensor | None = None,
        ocr_attention_mask: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        **kwargs,
    ) -> PatentLMMCausalLMOutputWithPast | tuple:
        r"""
        Args:
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Target ids, `-100` where no loss is taken (prompt, padding, image placeholders); shifted inside.
            logits_to_keep (`int` or `torch.Tensor`, *optional*, defaults to 0):
                Compute logits only for the last `logits_to_keep` positions (0 = all), as in transformers' LMs.
            Other arguments: see [`PatentLMMModel.forward`] (`return_dict=False` returns a tuple).

        Returns:
            [`PatentLMMCausalLMOutputWithPast`] with `logits` of shape `(batch_size, kept_length, vocab_size)`.
        """
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            ocr_input_ids=ocr_input_ids,
            ocr_bbox=ocr_bbox,
            ocr_attention_mask=ocr_attention_mask,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden = outputs.last_hidden_state  # (B, L, C_t)
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, kept, :])  # (B, L_kept, V)

        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        rest = {key: value for key, value in outputs.items() if key != "last_hidden_state"}
        output = PatentLMMCausalLMOutputWithPast(loss=loss, logits=logits, **rest)
        return output.to_tuple() if return_dict is False else output

    def prepare_inputs_for_generation(
        self,
        *args,
        pixel_values: torch.FloatTensor | None = None,
        ocr_input_ids: torch.LongTensor | None = None,
        ocr_bbox: torch.LongTensor | None = None,
        ocr_attention_mask: torch.LongTensor | None = None,
        **kwargs,
    ) -> dict:
        """Adds the figure inputs on the prefill step only; later steps read the image features from the cache."""
        model_inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        if _is_prefill(kwargs, model_inputs):
            model_inputs.update(
                pixel_values=pixel_values,
                ocr_input_ids=ocr_input_ids,
                ocr_bbox=ocr_bbox,
                ocr_attention_mask=ocr_attention_mask,
            )
        return model_inputs


def _is_prefill(generation_kwargs: dict, model_inputs: dict) -> bool:
    """Whether this generation step is the first one (or every step re-reads the whole prompt, without cache)."""
    if not generation_kwargs.get("use_cache", True):
        return True
    if generation_kwargs.get("is_first_iteration") is not None:  # transformers >= 5
        return bool(generation_kwargs["is_first_iteration"])
    cache_position = model_inputs.get("cache_position")  # transformers 4.x
    if cache_position is not None:
        return int(cache_position[0]) == 0
    cache = model_inputs.get("cache", model_inputs.get("past_key_values"))
    return cache is None or cache.get_seq_length() == 0


# Saving copies this file and configuration_patentlmm.py next to the weights, and config.json's auto_map names
# every Auto class that can load them (AutoModelForVision2Seq for transformers 4.x, its successor for 5.x).
PatentLMMModel.register_for_auto_class("AutoModel")
PatentLMMForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
