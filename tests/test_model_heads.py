"""The model's heads are a set built from its config; its layers may have different widths."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import tiny_encoder_config
from transformers import BertConfig

from ragprune.models import RerankPruneModel, load_model
from ragprune.models.config import (
    EncoderStructure,
    HeadSpec,
    LayerShape,
    RerankPruneConfig,
    default_heads,
)
from ragprune.models.heads import Head, head_class
from ragprune.models.structure import structure_of


class ToyHead(Head):
    """A head that only this test knows: the mean of the ``[CLS]`` vector times a learned scale."""

    reads = "cls"

    def __init__(self, hidden_size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, cls_hidden: torch.Tensor) -> torch.Tensor:
        return cls_hidden.mean(-1) * self.scale


def _toy_config() -> RerankPruneConfig:
    heads = default_heads() | {"toy": HeadSpec("test_model_heads:ToyHead", {"scale": 2.0})}
    return RerankPruneConfig(max_length=64, threshold=0.5, heads=heads)


def _batch(tokenizer):
    return tokenizer(["what is a flea"], ["A flea is an insect. It jumps."], return_tensors="pt")


def test_heads_come_from_the_config_and_forward_returns_each(tiny_model_dir):
    _, tokenizer = load_model(tiny_model_dir)
    model = RerankPruneModel(tiny_encoder_config(BertConfig), _toy_config()).eval()
    batch = _batch(tokenizer)
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"])
    assert set(out) == {"hidden", "rank", "token", "toy"}
    assert out["toy"].shape == out["rank"].shape == (1,)
    assert out["token"].shape == batch["input_ids"].shape
    torch.testing.assert_close(out["toy"], out["hidden"][:, 0].mean(-1) * 2.0)


def test_toy_head_added_by_config_alone_reaches_the_results(tiny_model_dir, tmp_path):
    from ragprune.pipeline import RerankPruner

    base, tokenizer = load_model(tiny_model_dir)
    model = RerankPruneModel(base.backbone_config, _toy_config())
    model.load_state_dict(base.state_dict() | {"heads.toy.scale": torch.tensor(3.0)})
    model.save_pretrained(tmp_path / "toy", tokenizer)
    with RerankPruner.load(tmp_path / "toy", device="cpu") as pruner:
        result = pruner.process("fleas", ["A flea is an insect.", "Paris is in France."], reorder=False)
    for passage in result:
        assert set(passage.scores) == {"rank", "toy"}
        assert passage.scores["rank"] == passage.logit
        assert passage.scores["toy"] != passage.scores["rank"]


def test_unknown_head_type_names_the_fix():
    with pytest.raises(ValueError, match="unknown head type 'listwise-v9'"):
        head_class("listwise-v9")
    with pytest.raises(ValueError, match="cannot be imported"):
        head_class("no_such_module:Head")
    with pytest.raises(ValueError, match="needs both 'rank' and 'token'"):
        RerankPruneConfig(heads={"rank": HeadSpec("rank")})


def test_layers_of_different_widths_save_and_load(tiny_model_dir, tmp_path):
    _, tokenizer = load_model(tiny_model_dir)
    backbone = tiny_encoder_config(BertConfig, num_attention_heads=4)  # 2 layers, 4 heads of 8, FFN 64
    structure = EncoderStructure((LayerShape(attention_heads=3, intermediate_size=20), LayerShape(1, 64)))
    config = RerankPruneConfig(max_length=64, encoder_structure=structure)
    torch.manual_seed(3)
    model = RerankPruneModel(backbone, config).eval()
    assert structure_of(model.encoder) == structure
    assert model.encoder.encoder.layer[0].attention.self.query.out_features == 3 * 8
    model.save_pretrained(tmp_path / "narrow", tokenizer)
    assert json.loads((tmp_path / "narrow" / "ragprune_config.json").read_text())["encoder_structure"] == {
        "layers": [
            {"attention_heads": 3, "intermediate_size": 20},
            {"attention_heads": 1, "intermediate_size": 64},
        ]
    }
    again, _ = load_model(tmp_path / "narrow")
    assert structure_of(again.encoder) == structure
    batch = _batch(tokenizer)
    with torch.no_grad():
        before, after = model(**batch), again(**batch)
    torch.testing.assert_close(before["rank"], after["rank"])
    torch.testing.assert_close(before["token"], after["token"])


def test_structure_with_the_wrong_layer_count_is_refused():
    structure = EncoderStructure((LayerShape(2, 10),))
    with pytest.raises(ValueError, match="describes 1 layers but the backbone has 2"):
        RerankPruneModel(tiny_encoder_config(BertConfig), RerankPruneConfig(encoder_structure=structure))
    with pytest.raises(ValueError, match="needs at least one of each"):
        EncoderStructure((LayerShape(0, 10),))


def test_folders_in_the_older_layout_still_load(tiny_model_dir, tmp_path):
    """Heads as a list, calibration and string-typed training arguments inside a ``training`` dict."""
    model, tokenizer = load_model(tiny_model_dir)
    folder = tmp_path / "old"
    model.save_pretrained(folder, tokenizer)
    legacy = {
        "max_length": 64,
        "threshold": 0.5,
        "sentence_reduce": "mean",
        "rank_pooler_activation": None,
        "heads": ["rank", "token"],
        "training": {
            "calibration_scale": 0.5,
            "calibration_bias": -1.0,
            "args": {"lr": "1e-05", "init": "None", "calibrate_sentences": "True", "data": ".cache/train"},
            "best_dl21_ndcg@10": 0.6,
            "history": [{"step": 1}],
        },
    }
    (folder / "ragprune_config.json").write_text(json.dumps(legacy))
    state = {
        k.replace("heads.rank.", "rank_head.").replace("heads.token.", "token_head."): v
        for k, v in model.state_dict().items()
    }
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    again, _ = load_model(folder)
    assert again.config.calibration.scale == 0.5 and again.config.calibration.bias == -1.0
    assert again.config.provenance.train_config == {
        "lr": 1e-05,
        "init": None,
        "calibrate_sentences": True,
        "data": ".cache/train",
    }
    assert again.config.provenance.metrics == {"dl21_ndcg@10": 0.6}
    batch = _batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch)["rank"], again(**batch)["rank"])


class MlpTokenHead(Head):
    """A token head that is not one linear map, so the pipeline reduces its probabilities."""

    reads = "tokens"

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(hidden_size, 8)
        self.out = torch.nn.Linear(8, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(hidden))).squeeze(-1)


def test_a_non_linear_token_head_prunes_through_the_reduction_kernel(tiny_model_dir, tmp_path):
    from ragprune.pipeline import RerankPruner

    base, tokenizer = load_model(tiny_model_dir)
    heads = {"rank": HeadSpec("rank"), "token": HeadSpec("test_model_heads:MlpTokenHead")}
    torch.manual_seed(5)
    model = RerankPruneModel(
        base.backbone_config, RerankPruneConfig(max_length=64, threshold=0.5, heads=heads)
    )
    model.save_pretrained(tmp_path / "mlp", tokenizer)
    passage = "A flea is an insect. It jumps far. Paris is in France."
    with RerankPruner.load(tmp_path / "mlp", device="cpu") as pruner:
        result = pruner.process("fleas", [passage]).passages[0]
        batch = tokenizer(["fleas"], [passage], return_tensors="pt")
        with torch.no_grad():
            keep = torch.sigmoid(pruner.model(**batch)["token"])[0]
    first = result.sentences[0].span  # "A flea is an insect."
    tokens = {batch.char_to_token(0, i, sequence_index=1) for i in range(first.start, first.end)} - {None}
    assert result.sentences[0].score == pytest.approx(float(keep[sorted(tokens)].mean()), abs=1e-5)
    assert [s.kept for s in result.sentences] == [s.score > 0.5 for s in result.sentences]


def test_without_heads_drops_a_head_and_keeps_every_other_weight():
    torch.manual_seed(0)
    model = RerankPruneModel(tiny_encoder_config(BertConfig), _toy_config()).eval()
    smaller = model.without_heads(["toy"])
    assert set(smaller.config.heads) == {"rank", "token"} == set(smaller.heads)
    kept = smaller.state_dict()
    assert set(kept) == {key for key in model.state_dict() if not key.startswith("heads.toy.")}
    for key, value in kept.items():
        torch.testing.assert_close(value, model.state_dict()[key])
    with pytest.raises(ValueError, match="every model keeps 'rank' and 'token'"):
        model.without_heads(["rank"])
    with pytest.raises(ValueError, match="cannot remove heads \\['nope'\\]"):
        model.without_heads(["nope"])
