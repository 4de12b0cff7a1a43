from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import TINY_ENCODER_SIZES, tiny_encoder_config
from transformers import DebertaV2Config, DebertaV2Model

from ragprune.models import RerankPruneModel, load_model, load_provence
from ragprune.models.config import RerankPruneConfig


def test_save_load_roundtrip_keeps_outputs(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    batch = tokenizer(["what is a flea"], ["A flea is an insect."], return_tensors="pt")
    before = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    model.save_pretrained(tmp_path / "copy", tokenizer)
    again, _ = load_model(tmp_path / "copy")
    after = again(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    torch.testing.assert_close(before["rank"], after["rank"])
    torch.testing.assert_close(before["token"], after["token"])
    assert again.config == model.config


def test_fp16_save_is_half_the_size(tiny_model_dir, tmp_path):
    model, _ = load_model(tiny_model_dir)
    model.save_pretrained(tmp_path / "fp32")
    model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size = lambda p: (p / "model.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "fp16") < 0.55 * size(tmp_path / "fp32")


def test_unknown_model_name_says_what_to_do():
    with pytest.raises(FileNotFoundError, match="not a folder; ragprune loads models offline"):
        load_model("naver/provence-reranker-debertav3-v1")


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="neither ragprune_config.json"):
        load_model(tmp_path)


def test_bad_sentence_reduce_is_rejected():
    with pytest.raises(ValueError, match="sentence_reduce='median' is not supported"):
        RerankPruneConfig(sentence_reduce="median")


def _tiny_provence_folder(folder, tokenizer):
    """A randomly initialised checkpoint in Provence's weight layout, plus a reference forward."""
    torch.manual_seed(1)
    width = TINY_ENCODER_SIZES["hidden_size"]
    config = tiny_encoder_config(
        DebertaV2Config,
        pooler_hidden_size=width,
        pooler_hidden_act="gelu",
        num_labels=1,
        type_vocab_size=0,
        relative_attention=True,
        position_biased_input=False,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
    )
    config.architectures = ["DebertaV2ForCompressionAndRanking"]
    encoder = DebertaV2Model(config).eval()
    pooler = torch.nn.Linear(width, width)
    classifier = torch.nn.Linear(width, 1)
    token_classifier = torch.nn.Linear(width, 2)
    state = {f"deberta.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"pooler.dense.{k}": v for k, v in pooler.state_dict().items()}
    state |= {f"classifier.{k}": v for k, v in classifier.state_dict().items()}
    state |= {f"token_classifier.{k}": v for k, v in token_classifier.state_dict().items()}
    folder.mkdir()
    config.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    tokenizer.save_pretrained(folder)

    def reference(input_ids, attention_mask):
        with torch.no_grad():
            hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            rank = classifier(torch.nn.functional.gelu(pooler(hidden[:, 0]))).squeeze(-1)
            keep = torch.softmax(token_classifier(hidden), dim=-1)[..., 1]
        return rank, keep

    return reference


def test_provence_checkpoint_loads_with_identical_outputs(tiny_model_dir, tmp_path):
    _, tokenizer = load_model(tiny_model_dir)
    reference = _tiny_provence_folder(tmp_path / "provence", tokenizer)
    model, _ = load_model(tmp_path / "provence")  # detected by its config's architecture
    assert model.config.heads["rank"].options == {"pooler_activation": "gelu"}
    assert json.loads((tmp_path / "provence" / "config.json").read_text())["architectures"]
    batch = tokenizer(
        ["who wrote it", "a"],
        ["The author wrote it in 1901. Then more.", "b c"],
        return_tensors="pt",
        padding=True,
    )
    expected_rank, expected_keep = reference(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(out["rank"], expected_rank, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.sigmoid(out["token"]), expected_keep, atol=1e-5, rtol=1e-5)


def test_load_provence_rejects_other_folders(tiny_model_dir):
    with pytest.raises(ValueError, match="is not a Provence checkpoint"):
        load_provence(tiny_model_dir)


def test_from_backbone_loads_pretrained_encoder_weights(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(2)
    backbone = BertModel(tiny_encoder_config(BertConfig, vocab_size=100, num_hidden_layers=1))
    backbone.save_pretrained(tmp_path / "bert")
    model = RerankPruneModel.from_backbone(tmp_path / "bert")
    torch.testing.assert_close(
        model.encoder.embeddings.word_embeddings.weight, backbone.embeddings.word_embeddings.weight
    )


def test_an_fp16_backbone_folder_trains_in_float32(tmp_path):
    """A backbone saved in fp16 (as carried to the GPU) must still give float32 trainable weights."""
    from transformers import BertConfig, BertModel

    BertModel(tiny_encoder_config(BertConfig)).half().save_pretrained(tmp_path / "fp16")
    model = RerankPruneModel.from_backbone(tmp_path / "fp16")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
