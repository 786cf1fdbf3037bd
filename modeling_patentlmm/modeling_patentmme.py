"""PatentMMEForPreTraining: the PatentMME encoder with the MLM, LA-MIM, PCH and TNA heads (docs/pretraining.md)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LayoutLMv3Config, LayoutLMv3Model, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_patentmme import PatentMMEConfig
from .modeling_patentlmm import build_vision_tower

__all__ = ["AUTO_MAP", "PatentMMEForPreTraining", "PatentMMEHead", "PatentMMEPreTrainingOutput", "encoder_config"]

AUTO_MAP = {
    "AutoConfig": "configuration_patentmme.PatentMMEConfig",
    "AutoModelForPreTraining": "modeling_patentmme.PatentMMEForPreTraining",
}
IGNORE_INDEX = -100


@dataclass
class PatentMMEPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`): weighted sum of the task losses present (`None` without labels).
    mlm_loss, mim_loss, pch_loss, tna_loss (`torch.FloatTensor` of shape `()`): each task's loss; `None` when the task
        is off, got no labels, or the batch holds nothing it can learn from (no masked token, no masked patch, no
        token on a node).
    mlm_logits (`(batch_size, ocr_length, vocab_size)`), mim_logits (`(batch_size, num_patches, mim_vocab_size)`),
    pch_logits (`(batch_size, num_patches, num_patch_classes)`), tna_logits (`(batch_size, ocr_length, num_nodes)`):
        the heads' outputs (TNA: cosine similarities, divided by `tna_temperature` if set).
    last_hidden_state (`(batch_size, ocr_length + 1 + num_patches, hidden_size)`): the encoder's output.
    hidden_states, attentions: as `LayoutLMv3Model` returns them when asked.
    """

    loss: torch.FloatTensor | None = None
    mlm_loss: torch.FloatTensor | None = None
    mim_loss: torch.FloatTensor | None = None
    pch_loss: torch.FloatTensor | None = None
    tna_loss: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    mim_logits: torch.FloatTensor | None = None
    pch_logits: torch.FloatTensor | None = None
    tna_logits: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class PatentMMEHead(nn.Module):
    """Linear(h, 2h) -> GELU -> Linear(2h, out) as `proj.0` / `proj.2`, the authors' `ProjectorMLP`
    (`patentmme_layoutlmv3.py:219-230`), so its keys are theirs. `(..., h) -> (..., out)`."""

    def __init__(self, hidden_size: int, out_features: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Linear(hidden_size, 2 * hidden_size), nn.GELU(), nn.Linear(2 * hidden_size, out_features)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)


def encoder_config(config: PatentMMEConfig) -> LayoutLMv3Config:
    """The plain `LayoutLMv3Config` of the encoder (what `encoder/` folders and `patentlmm train --vision_tower`
    read): every LayoutLMv3 field of `config`, none of the pretraining ones."""
    fields = LayoutLMv3Config().to_dict()
    values = {key: value for key, value in config.to_dict().items() if key in fields}
    values.pop("model_type", None)
    values.pop("auto_map", None)
    values.pop("architectures", None)
    return LayoutLMv3Config(**values)


def _average(per_position: torch.Tensor, labelled: torch.Tensor, normalisation: str) -> torch.Tensor | None:
    """Mean of `per_position` (B, L) over all B * L positions (`"original"`, unlabelled ones are 0) or over the
    labelled ones (`"masked"`); `None` where no position is labelled."""
    if not bool(labelled.any()):
        return None
    if normalisation == "original":
        return per_position.mean()
    return per_position.sum() / labelled.sum()


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, normalisation: str) -> torch.Tensor | None:
    """MLM / MIM: cross-entropy of `logits` (B, L, K) against `labels` (B, L), -100 = no label."""
    per_position = F.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(labels.shape)
    return _average(per_position, labels != IGNORE_INDEX, normalisation)


def node_similarities(
    token_embeds: torch.Tensor, patch_embeds: torch.Tensor, node_patch_map: torch.Tensor, temperature: float | None
) -> torch.Tensor:
    """TNA logits `(B, T, N)`: cosine similarity of each token embedding `(B, T, d)` and each node embedding, the mean
    of its patches' embeddings `(B, P, d)` under `node_patch_map` `(B, N, P)` (`patentmme_layoutlmv3.py:953-966`)."""
    node_patch_map = node_patch_map.to(patch_embeds.dtype)
    nodes = (node_patch_map @ patch_embeds) / (node_patch_map.sum(-1, keepdim=True) + 1e-6)  # (B, N, d)
    similarities = F.normalize(token_embeds, dim=-1) @ F.normalize(nodes, dim=-1).transpose(1, 2)  # (B, T, N)
    return similarities if temperature is None else similarities / temperature


def node_alignment_loss(
    logits: torch.Tensor, labels: torch.Tensor, node_patch_map: torch.Tensor, normalisation: str
) -> torch.Tensor | None:
    """TNA: cross-entropy over nodes of `logits` (B, T, N) against `labels` (B, T), -100 = no node. `"original"`: the
    softmax also spans the batch's padding nodes (similarity 0), as the authors'; `"masked"`: only the figure's own."""
    logits = logits.float()
    if normalisation == "masked":
        empty = node_patch_map.sum(-1) == 0  # (B, N)
        logits = logits.masked_fill(empty[:, None, :], torch.finfo(logits.dtype).min)
    per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    return _average(per_token, labels != IGNORE_INDEX, normalisation)


class PatentMMEForPreTraining(PreTrainedModel):
    """PatentMME for pretraining: `layoutlmv3` (the encoder, `build_vision_tower`), `vis_mask_token` and the heads
    `mlm_head`, `mim_head`, `patch_cls_linear_head`, `tna_ocr_head`, `tna_vis_head`, named as the authors' modules
    (`patentmme_layoutlmv3.py:804-823`, keys `model.<name>` in their checkpoints). The VQGAN is not part of it: the
    MIM targets come in as `mim_labels`. Masks are drawn by the collator (`patentlmm.pretraining.collator`)."""

    config_class = PatentMMEConfig
    base_model_prefix = "layoutlmv3"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LayoutLMv3Layer"]
    # LayoutLMv3's own attention choices (SDPA on transformers 5, eager on 4.x), so the encoder runs as its model does
    _supports_sdpa = getattr(LayoutLMv3Model, "_supports_sdpa", False)
    _supports_attention_backend = getattr(LayoutLMv3Model, "_supports_attention_backend", False)

    def __init__(self, config: PatentMMEConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.layoutlmv3 = build_vision_tower(config)
        self.vis_mask_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.mlm_head = PatentMMEHead(hidden, config.vocab_size)
        self.mim_head = PatentMMEHead(hidden, config.mim_vocab_size)
        self.patch_cls_linear_head = PatentMMEHead(hidden, len(config.patch_classes))
        self.tna_ocr_head = PatentMMEHead(hidden, hidden // 2)
        self.tna_vis_head = PatentMMEHead(hidden, hidden // 2)
        self.post_init()
        with torch.no_grad():  # the authors' zeros would make every masked patch the same vector before positions
            nn.init.trunc_normal_(self.vis_mask_token, std=config.initializer_range)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves safetensors weights, `config.json` with the `auto_map` and this package's source files."""
        self.config.auto_map = dict(AUTO_MAP)
        if kwargs.get("safe_serialization") is False:
            raise ValueError("PatentMME saves safetensors only (safe_serialization=True).")
        return super().save_pretrained(save_directory, *args, **kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.layoutlmv3.get_input_embeddings()

    @contextmanager
    def _masked_patches(self, mim_labels: torch.LongTensor | None):
        """While active, the patch embeddings `(B, P, h)` at positions with a MIM label are the mask token, replaced
        before the position embeddings are added, as `patentmme_layoutlmv3.py:884-898,1015` does."""
        if mim_labels is None:
            yield
            return
        masked = (mim_labels != IGNORE_INDEX).unsqueeze(-1)  # (B, P, 1)

        def replace(_module, _inputs, patches):
            return torch.where(masked.to(patches.device), self.vis_mask_token.to(patches.dtype), patches)

        handle = self.layoutlmv3.patch_embed.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()

    def forward(
        self,
        input_ids: torch.LongTensor,
        bbox: torch.LongTensor,
        pixel_values: torch.FloatTensor,
        attention_mask: torch.LongTensor | None = None,
        mlm_labels: torch.LongTensor | None = None,
        mim_labels: torch.LongTensor | None = None,
        patch_labels: torch.FloatTensor | None = None,
        tna_labels: torch.LongTensor | None = None,
        node_patch_map: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> PatentMMEPreTrainingOutput | tuple:
        r"""
        Args:
            input_ids (`(batch_size, ocr_length)`): OCR token ids, MLM positions already replaced by `<mask>`.
            bbox (`(batch_size, ocr_length, 4)`): token boxes in 0-1000.
            pixel_values (`(batch_size, 3, input_size, input_size)`): figures in [-1, 1].
            attention_mask (`(batch_size, ocr_length)`, *optional*): 1 = real token.
            mlm_labels (`(batch_size, ocr_length)`, *optional*): original ids at masked tokens, -100 elsewhere.
            mim_labels (`(batch_size, num_patches)`, *optional*): visual-token ids at masked patches, -100
                elsewhere; those patches enter the encoder as `vis_mask_token`.
            patch_labels (`(batch_size, num_patches, num_patch_classes)`, *optional*): multi-hot PCH targets.
            tna_labels (`(batch_size, ocr_length)`, *optional*): node index of each token, -100 = none.
            node_patch_map (`(batch_size, num_nodes, num_patches)`, *optional*): 1 where a node covers a patch.
        """
        with self._masked_patches(mim_labels):
            encoded = self.layoutlmv3(
                input_ids=input_ids,
                bbox=bbox,
                attention_mask=attention_mask,
                pixel_values=pixel_values.to(self.dtype),
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
            )
        hidden = encoded.last_hidden_state  # (B, T + 1 + P, h)
        text, patches = hidden[:, : input_ids.shape[1]], hidden[:, input_ids.shape[1] + 1 :]  # visual CLS left out
        output = PatentMMEPreTrainingOutput(
            last_hidden_state=hidden, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        self._heads(output, text, patches, mlm_labels, mim_labels, patch_labels, tna_labels, node_patch_map)
        return output.to_tuple() if return_dict is False else output

    def _heads(self, output, text, patches, mlm_labels, mim_labels, patch_labels, tna_labels, node_patch_map) -> None:
        """Fills `output`'s logits and losses for each enabled task whose labels were given, then the total."""
        weights, normalisation = self.config.loss_weights, self.config.loss_normalisation
        enabled = self.config.enabled_tasks
        if "mlm" in enabled and mlm_labels is not None:
            output.mlm_logits = self.mlm_head(text)
            output.mlm_loss = token_cross_entropy(output.mlm_logits, mlm_labels, normalisation)
        if "mim" in enabled and mim_labels is not None:
            output.mim_logits = self.mim_head(patches)
            output.mim_loss = token_cross_entropy(output.mim_logits, mim_labels, normalisation)
        if "pch" in enabled and patch_labels is not None:
            output.pch_logits = self.patch_cls_linear_head(patches)
            output.pch_loss = F.binary_cross_entropy_with_logits(output.pch_logits.float(), patch_labels.float())
        if "tna" in enabled and tna_labels is not None and node_patch_map is not None and node_patch_map.shape[1]:
            output.tna_logits = node_similarities(
                self.tna_ocr_head(text), self.tna_vis_head(patches), node_patch_map, self.config.tna_temperature
            )
            output.tna_loss = node_alignment_loss(output.tna_logits, tna_labels, node_patch_map, normalisation)
        losses = [(task, getattr(output, f"{task}_loss")) for task in enabled]
        present = [weights[task] * loss for task, loss in losses if loss is not None]
        labelled = any(x is not None for x in (mlm_labels, mim_labels, patch_labels, tna_labels))
        if present:
            output.loss = torch.stack(present).sum()
        elif labelled:  # nothing to learn from in this batch: a zero loss that still backpropagates
            output.loss = output.last_hidden_state.sum() * 0.0


PatentMMEForPreTraining.register_for_auto_class("AutoModelForPreTraining")
