"""The shared encoder with its set of heads, saved and loaded as a Hugging Face-style folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from ragprune.models.config import HeadSpec, RerankPruneConfig
from ragprune.models.heads import Head, Reads, build_head
from ragprune.models.structure import apply_structure

WEIGHTS_NAME = "model.safetensors"
LEGACY_HEAD_PREFIXES = {"rank_head.": "heads.rank.", "token_head.": "heads.token."}
"""Weight names of folders saved when the two heads were fixed attributes."""


class RerankPruneModel(nn.Module):
    """One encoder pass over ``[CLS] query [SEP] passage [SEP]`` feeds a set of heads (Provence's design,
    Chirkova et al. 2025, extended to any number of heads). Any ``AutoModel`` encoder serves as the backbone.

    ``heads`` is built from ``config.heads``; every model has a ``rank`` head (relevance logit on ``[CLS]``)
    and a ``token`` head (keep logit per token). Heads that read ``"candidates"`` (list-level) are not run
    by :meth:`forward`; the pipeline calls them once per query on the candidates' ``[CLS]`` vectors.
    """

    def __init__(self, backbone_config: PretrainedConfig, config: RerankPruneConfig | None = None) -> None:
        super().__init__()
        self.config = config or RerankPruneConfig()
        self.backbone_config = backbone_config
        # float32 whatever dtype the backbone folder was saved in (an fp16 config would otherwise
        # build fp16 weights, which AdamW cannot train); inference casts down where it runs
        self.encoder = _build_encoder(backbone_config).float()
        if self.config.encoder_structure is not None:
            apply_structure(self.encoder, self.config.encoder_structure)
        hidden = backbone_config.hidden_size
        self.heads = nn.ModuleDict(
            {name: build_head(spec.type, hidden, spec.options) for name, spec in self.config.heads.items()}
        )

    def head(self, name: str) -> Head:
        """The head called ``name`` (``KeyError`` naming the heads there are)."""
        if name not in self.heads:
            raise KeyError(f"the model has no head {name!r}; its heads are {sorted(self.heads)}")
        return self.heads[name]  # type: ignore[return-value]

    @property
    def takes_4d_mask(self) -> bool:
        """Whether the backbone takes a prepared 4-D boolean mask (BERT with SDPA attention; other models
        build masks their own way, e.g. ModernBERT unpads with the 2-D one)."""
        config = self.backbone_config
        attention = getattr(self.encoder.config, "_attn_implementation", None)
        return config.model_type == "bert" and attention == "sdpa"

    def heads_reading(self, reads: Reads) -> dict[str, Head]:
        """The heads that read ``reads`` (``"cls"``, ``"tokens"`` or ``"candidates"``), in config order."""
        return {name: head for name, head in self.heads.items() if head.reads == reads}  # type: ignore[misc]

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        layers: bool = False,
    ) -> torch.Tensor:
        """Last hidden states ``[B, L, H]`` for token ids ``[B, L]`` (``attention_mask`` 1 = real token);
        with ``layers=True`` every layer's output, ``[num_layers, B, L, H]`` (the last is the same states).

        On CUDA a BERT backbone with SDPA attention gets the mask as a 4-D boolean ``[B, 1, 1, L]`` (True
        = attend), which transformers passes on as it is: its own mask building checks the mask's values
        on the host (a device synchronisation per forward), which stops batches from queueing and CUDA
        graphs from capturing the forward (``ragprune.pipeline.graphs``). The attention is the same."""
        if attention_mask.is_cuda and attention_mask.dim() == 2 and self.takes_4d_mask:
            attention_mask = attention_mask[:, None, None, :].bool()
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and getattr(self.backbone_config, "type_vocab_size", 0) > 1:
            kwargs["token_type_ids"] = token_type_ids
        if not layers:
            return self.encoder(**kwargs).last_hidden_state
        states = self.encoder(**kwargs, output_hidden_states=True).hidden_states
        return torch.stack(states[1:])  # the embeddings' output, states[0], is not a layer's

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        layers: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``{"hidden": [B, L, H], <cls head>: [B], <token head>: [B, L]}`` for every pointwise head; with
        ``layers=True`` also ``"layers"``: every layer's output ``[num_layers, B, L, H]`` (layer-wise
        distillation, ``weight_pruning.recovery``)."""
        encoded = self.encode(input_ids, attention_mask, token_type_ids, layers=layers)
        hidden = encoded[-1] if layers else encoded
        outputs = {"hidden": hidden}
        if layers:
            outputs["layers"] = encoded
        for name, head in self.heads_reading("cls").items():
            outputs[name] = head(hidden[:, 0])
        for name, head in self.heads_reading("tokens").items():
            outputs[name] = head(hidden)
        return outputs

    def with_head(self, name: str, spec: HeadSpec) -> RerankPruneModel:
        """A copy of this model with one more head, ``name`` built from ``spec`` (new weights) after the
        existing ones, whose weights are copied. ``ValueError`` if the model already has a head ``name``."""
        if name in self.config.heads:
            raise ValueError(f"the model already has a head {name!r}; pick another name")
        config = replace(self.config, heads=dict(self.config.heads) | {name: spec})
        model = type(self)(self.backbone_config, config)
        missing, unexpected = model.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(key.startswith(f"heads.{name}.") for key in missing)
        return model.to(next(self.parameters()).device).train(self.training)

    def without_heads(self, names: list[str]) -> RerankPruneModel:
        """A copy of this model without the heads ``names`` (the other weights copied): e.g. a list-level
        head before its encoder trains on, since that head was fitted to the old encoder's vectors.
        ``ValueError`` if a name is not a head or is ``rank`` / ``token`` (every model has those)."""
        if isinstance(names, str):
            raise TypeError(f"names must be a list of head names, e.g. [{names!r}]")
        unknown = [name for name in names if name not in self.config.heads]
        required = [name for name in names if name in ("rank", "token")]
        if unknown or required:
            raise ValueError(
                f"cannot remove heads {unknown + required}: the model's heads are {sorted(self.config.heads)}"
                " and every model keeps 'rank' and 'token'"
            )
        heads = {name: spec for name, spec in self.config.heads.items() if name not in names}
        model = type(self)(self.backbone_config, replace(self.config, heads=heads))
        kept = {
            key: value
            for key, value in self.state_dict().items()
            if not (key.startswith("heads.") and key.split(".")[1] in names)
        }
        model.load_state_dict(kept)
        return model.to(next(self.parameters()).device).train(self.training)

    # ---- construction and persistence -------------------------------------------------------

    @classmethod
    def from_backbone(cls, path: str | Path, config: RerankPruneConfig | None = None) -> RerankPruneModel:
        """New heads on a pretrained encoder folder (for training)."""
        backbone_config = AutoConfig.from_pretrained(str(path))
        model = cls(backbone_config, config)
        pretrained = AutoModel.from_pretrained(str(path))
        missing, unexpected = model.encoder.load_state_dict(pretrained.state_dict(), strict=False)
        unexpected = [key for key in unexpected if not key.startswith("pooler.")]
        if missing or unexpected:
            raise ValueError(
                f"backbone at {path} does not match its config: missing={missing}, unexpected={unexpected}"
            )
        return model

    def save_pretrained(
        self,
        folder: str | Path,
        tokenizer: PreTrainedTokenizerBase | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Write ``config.json``, ``ragprune_config.json``, ``model.safetensors`` (and the tokenizer)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone_config.save_pretrained(folder)
        self.config.save(folder)
        state = {k: (v.to(dtype) if dtype else v).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> RerankPruneModel:
        """Load a folder written by :meth:`save_pretrained`; weights are upcast to float32."""
        folder = Path(folder)
        config = RerankPruneConfig.load(folder)
        model = cls(AutoConfig.from_pretrained(str(folder)), config)
        state = {_current_name(k): v.float() for k, v in load_file(str(folder / WEIGHTS_NAME)).items()}
        model.load_state_dict(state)
        return model.eval()


def _current_name(key: str) -> str:
    for old, new in LEGACY_HEAD_PREFIXES.items():
        if key.startswith(old):
            return new + key.removeprefix(old)
    return key


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The model folder's tokenizer; must be a fast tokenizer, since spans need character offsets."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not tokenizer.is_fast:
        raise ValueError(
            f"the tokenizer in {folder} is not a fast tokenizer; ragprune needs character offsets"
        )
    return tokenizer


def _build_encoder(config: PretrainedConfig) -> nn.Module:
    """The bare encoder; BERT-like models are asked not to build their unused pooler."""
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)
