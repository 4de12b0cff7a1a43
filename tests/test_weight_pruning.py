"""Weight pruning (``ragprune.weight_pruning``) on a tiny model: every method and granularity, structured
removal that saves / loads / runs, exact slicing, masks, DAI's per-structure alignment, recovery, the CLI."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch
from sample_texts import QUERY, TEXTS
from tiny_models import minilm_tokenizer_path, tiny_encoder_config
from transformers import BertConfig

from ragprune.models import RerankPruneConfig, RerankPruneModel, load_model, load_tokenizer
from ragprune.models.structure import structure_of
from ragprune.training.losses import ListwiseDistillationLoss
from ragprune.weight_pruning.api import Calibration, build_calibration, compress, measure
from ragprune.weight_pruning.calibration import (
    CalibrationGroup,
    CalibrationPassage,
    CalibrationSet,
    load_source,
    looks_biomedical,
    with_teacher_scores,
    write_teacher_scores,
)
from ragprune.weight_pruning.importance import (
    METHODS,
    DAIConfig,
    alignment_factors,
    structure_scores,
    weight_scores,
)
from ragprune.weight_pruning.loss import group_batches, model_inputs
from ragprune.weight_pruning.measure import parameter_counts, prepare_pairs_once, score_pairs
from ragprune.weight_pruning.recovery import (
    RecoveryConfig,
    _distillation_loss,
    distill,
    kept_layer_map,
    layer_map,
    mixed_rank_target,
)
from ragprune.weight_pruning.sampling import kmeans, nearest_members
from ragprune.weight_pruning.statistics import CalibrationStatistics
from ragprune.weight_pruning.structured import kept_count, prune_heads, prune_neurons
from ragprune.weight_pruning.structures import layer_parameters, prunable_linears
from ragprune.weight_pruning.unstructured import is_nm_sparse, to_semi_structured

CANDIDATES = 4
EXTRA = [
    "Aspirin lowers the risk of heart attacks. It thins the blood.",
    "The Nile is a long river. It flows north into the Mediterranean.",
    "Insulin is a hormone made in the pancreas. It lowers blood sugar.",
    "Chess is played on a board of 64 squares. Each player has sixteen pieces.",
]


def _group(query: str, relevant: str, others: list[str], source: str) -> CalibrationGroup:
    first = relevant.split(". ")[0] + "."
    passages = [CalibrationPassage(relevant, relevant=True, gold_spans=((0, len(first)),))]
    passages += [CalibrationPassage(text) for text in others]
    return CalibrationGroup(query, tuple(passages), source)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(minilm_tokenizer_path())


@pytest.fixture(scope="module")
def model() -> RerankPruneModel:
    """3 layers, 4 heads of 8, FFN 64: enough structures of every kind to remove some."""
    torch.manual_seed(0)
    backbone = tiny_encoder_config(BertConfig, num_attention_heads=4, num_hidden_layers=3)
    return RerankPruneModel(backbone, RerankPruneConfig(max_length=64, threshold=0.5)).eval()


@pytest.fixture(scope="module")
def calibration(model, tokenizer) -> Calibration:
    texts = TEXTS + EXTRA
    domain = CalibrationSet(
        "domain",
        [
            _group("does aspirin protect the heart", EXTRA[0], [TEXTS[1], TEXTS[2], EXTRA[1]], "d"),
            _group("what does insulin do", EXTRA[2], [TEXTS[0], EXTRA[3], TEXTS[3]], "d"),
            _group(QUERY, TEXTS[0], [EXTRA[0], TEXTS[2], EXTRA[2]], "d"),
        ],
    )
    general = CalibrationSet(
        "general",
        [
            _group("where is the eiffel tower", TEXTS[1], [texts[0], texts[2], texts[5]], "g"),
            _group("how many squares on a chess board", EXTRA[3], [TEXTS[2], EXTRA[1], TEXTS[3]], "g"),
        ],
    )
    calibration = Calibration({"domain": domain, "general": general})
    calibration.batches = {
        name: group_batches(s.groups, tokenizer, model.config.max_length)
        for name, s in calibration.sets.items()
    }
    return calibration


@pytest.fixture(scope="module")
def stats(model, calibration) -> CalibrationStatistics:
    return measure(model, calibration, "cpu")


def _outputs(model: RerankPruneModel, tokenizer) -> dict[str, torch.Tensor]:
    batch = tokenizer([QUERY] * len(TEXTS), TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


# ---- calibration data ------------------------------------------------------------------------------


def test_calibration_sources_read_every_format(tmp_path, model, tokenizer):
    pruning = tmp_path / "pruning.jsonl"
    records = [
        {
            "id": str(i),
            "source": "toy",
            "question": question,
            "answers": [],
            "contexts": [{"title": "", "sentences": text.split(". "), "gold_sentence_ids": [0]}],
        }
        for i, (question, text) in enumerate(
            zip(["fleas", "eiffel", "cats", "ticks", "aspirin"], TEXTS + EXTRA)
        )
    ]
    pruning.write_text("".join(json.dumps(r) + "\n" for r in records))
    groups = load_source(pruning, candidates=CANDIDATES)
    assert len(groups) == 5 and all(len(g.passages) == CANDIDATES for g in groups)
    assert all(sum(p.relevant for p in g.passages) == 1 for g in groups)
    first = next(p for p in groups[0].passages if p.relevant)
    (start, end), *_ = first.gold_spans
    assert first.text[start:end] == "Fleas live up to a year"
    assert all(p.gold_spans == () for g in groups for p in g.passages if not p.relevant)

    triples = tmp_path / "triples.tsv"
    triples.write_text("".join(f"q{i}\t{TEXTS[i]}\t{EXTRA[i]}\n" for i in range(4)))
    assert all(len(g.passages) == CANDIDATES for g in load_source(triples, CANDIDATES))
    pairs = tmp_path / "wikiqa.tsv"
    pairs.write_text(
        "".join(f"q{i}\t{s}\t{int(j == 0)}\n" for i in range(5) for j, s in enumerate(["A b.", f"C{i}."]))
    )
    assert len(load_source(pairs, CANDIDATES)) == 5

    saved = tmp_path / "calibration.jsonl"
    CalibrationSet("x", groups).save(saved)
    assert load_source(saved, CANDIDATES) == groups
    with pytest.raises(ValueError, match="this run uses 8"):
        load_source(saved, 8)
    with pytest.raises(FileNotFoundError, match="neither a file nor one of"):
        load_source(tmp_path / "missing.jsonl")
    sampled = CalibrationSet("y", groups)
    assert sampled.sources() == {"pruning": 5}
    assert looks_biomedical("symptoms of neuroma pain") and not looks_biomedical("average age at marriage")


def test_batches_carry_gold_labels_and_weights(tokenizer):
    group = CalibrationGroup(
        "fleas",
        (
            CalibrationPassage(TEXTS[0], relevant=True, gold_spans=((0, 24),)),
            CalibrationPassage(TEXTS[1]),
            CalibrationPassage(TEXTS[2], relevant=True, gold_spans=None),
        ),
    )
    (batch,) = group_batches([group], tokenizer, 64)
    assert batch["gold"].tolist() == [[True, False, True]]
    assert batch["sentence_labels"].tolist() == [[1, 0], [0, 0], [-100, -100]]
    assert batch["passage_weight"].tolist() == [1.0, 0.25, 1.0]


def test_teacher_scores_travel_by_group_key_into_the_batches(tmp_path, tokenizer):
    groups = [
        _group("fleas", TEXTS[0], TEXTS[1:4], "a"),
        _group("nile", EXTRA[1], EXTRA[2:4] + [TEXTS[0]], "a"),
    ]
    path = tmp_path / "scores.tsv.gz"
    write_teacher_scores(path, groups[:1], [[0.5, -1.0, 2.0, 0.0]])
    scored, covered = with_teacher_scores(groups, path)
    assert covered == 1 and [p.teacher for p in scored[0].passages] == [0.5, -1.0, 2.0, 0.0]
    assert all(p.teacher is None for p in scored[1].passages)  # not in the file: unchanged
    assert CalibrationGroup.from_dict(scored[0].to_dict()) == scored[0]  # the score survives a save
    assert scored[0].key() == groups[0].key() != groups[1].key()  # scores do not change the key
    (batch,) = group_batches(scored, tokenizer, 64, groups_per_batch=2)
    assert batch["teacher"][0].tolist() == [0.5, -1.0, 2.0, 0.0] and batch["teacher"][1].isnan().all()
    assert "teacher" not in group_batches(groups, tokenizer, 64)[0]
    with pytest.raises(ValueError, match="scores none of these 1 groups"):
        with_teacher_scores(groups[1:], path)
    with pytest.raises(ValueError, match="4 scores for a group of 3"):
        write_teacher_scores(path, [CalibrationGroup("q", groups[0].passages[:3])], [[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="not all finite"):
        write_teacher_scores(path, groups[:1], [[0.5, math.inf, 2.0, 0.0]])
    bad = tmp_path / "bad.tsv.gz"
    for line in ("only-a-key", "k\t1.0,nan", "k\t1.0,,2.0"):
        with gzip.open(bad, "wt") as handle:
            handle.write(f"{groups[0].key()}\t1,2,3,4\n\n{line}\n")  # a blank line is fine
        with pytest.raises(ValueError, match="bad.tsv.gz:3: expected 'key<TAB>score,score,...' with finite"):
            with_teacher_scores(groups, bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a valid gzip file"):
        with_teacher_scores(groups, bad)
    whole = gzip.compress("".join(f"k{i}\t{i},{i * 7 % 13}\n" for i in range(2000)).encode())
    bad.write_bytes(whole[: len(whole) // 2])  # cut short, as by a killed writer
    with pytest.raises(ValueError, match="not a valid gzip file"):
        with_teacher_scores(groups, bad)
    assert not list(tmp_path.glob("*.tmp"))  # the writer renames its partial file
    with pytest.raises(FileNotFoundError, match="recovery_teacher.py"):
        with_teacher_scores(groups, tmp_path / "missing.tsv.gz")


def test_mixed_rank_target_moves_the_dense_order_towards_the_teacher():
    dense = torch.tensor([[3.0, 2.0, 1.0, 0.0], [1.0, 0.0, 2.0, 5.0]])
    external = torch.tensor([[0.0, 1.0, 2.0, 3.0], [math.nan, 1.0, 1.0, 1.0]])
    assert torch.equal(mixed_rank_target(dense, external, 0.0)[0], dense[0])
    full = mixed_rank_target(dense, external, 1.0)
    assert full[0].argsort().tolist() == [0, 1, 2, 3]  # the external order ...
    assert full[0].mean() == pytest.approx(1.5) and full[0].std() == pytest.approx(
        dense[0].std()
    )  # dense scale
    half = mixed_rank_target(dense, external, 0.5)
    assert torch.allclose(half[0], torch.full((4,), 1.5))  # opposite orders cancel out
    assert torch.equal(half[1], dense[1])  # a group with a missing score keeps the dense target
    odd = torch.tensor([[math.inf, 1.0, 1.0, 1.0], [123.457] * 4])
    assert torch.equal(mixed_rank_target(dense, odd, 1.0)[0], dense[0])  # not finite: the dense target
    assert torch.allclose(mixed_rank_target(dense, odd, 1.0)[1], torch.full((4,), 2.0))  # constant: z = 0
    with pytest.raises(ValueError, match="teacher_weight must be in"):
        RecoveryConfig(teacher_weight=1.5)


def test_kmeans_sampling_takes_one_member_per_cluster():
    rng = np.random.default_rng(0)
    centers = np.eye(4, 8, dtype=np.float32) * 10
    points = np.concatenate([c + rng.normal(0, 0.1, (5, 8)) for c in centers]).astype(np.float32)
    centroids = kmeans(points, 4, seed=1)
    chosen = nearest_members(points, centroids)
    assert sorted(i // 5 for i in chosen) == [0, 1, 2, 3]
    assert np.array_equal(centroids, kmeans(points, 4, seed=1))


def test_build_calibration_samples_with_the_model(tmp_path, model, tokenizer, calibration):
    path = tmp_path / "domain.jsonl"
    calibration.sets["domain"].save(path)
    built = build_calibration(model, tokenizer, domain=[path], size=2, candidates=CANDIDATES)
    assert set(built.sets) == {"domain"} and len(built.sets["domain"]) == 2
    assert len(built.batches["domain"]) == 2


# ---- statistics and importance ---------------------------------------------------------------------


def test_fisher_is_the_mean_squared_gradient(model, calibration):
    one = Calibration(
        {"general": calibration.sets["general"]}, {"general": calibration.batches["general"][:1]}
    )
    single = measure(model, one, "cpu")
    for name in list(single.fisher["general"])[:6]:
        torch.testing.assert_close(single.fisher["general"][name], single.gradient["general"][name] ** 2)
    assert set(single.activations) == set(prunable_linears(model))


def test_a_head_whose_output_weights_are_zero_has_the_lowest_magnitude(model):
    pruned = _copy(model)
    with torch.no_grad():
        pruned.encoder.encoder.layer[1].attention.output.dense.weight[:, 16:24] = 0  # head 2 of 4 (size 8)
    scores = structure_scores(pruned, "magnitude")
    assert int(torch.argmin(scores.heads[1])) == 2
    assert int(torch.argmin(scores.heads[1])) != int(
        torch.argmin(structure_scores(model, "magnitude").heads[1])
    )


def _constructed_stats(model: RerankPruneModel) -> CalibrationStatistics:
    """Domain gradients equal to the general ones on head 0 of every layer, opposite on head 1, orthogonal
    noise elsewhere; equal Fisher on both sets."""
    generator = torch.Generator().manual_seed(0)
    params = layer_parameters(model)
    general = {n: torch.randn(p.shape, generator=generator) for n, p in params.items()}
    domain = {n: torch.randn(p.shape, generator=generator) for n, p in params.items()}
    for name in params:
        if ".attention.self." in name:
            rows = slice(0, 8)
            domain[name][rows] = general[name][rows]
            domain[name][8:16] = -general[name][8:16]
    fisher = {n: torch.full(p.shape, 1e-6) for n, p in params.items()}
    return CalibrationStatistics(
        fisher={"domain": fisher, "general": {n: f / 2 for n, f in fisher.items()}},
        gradient={"domain": domain, "general": general},
    )


def test_dai_alignment_factor_per_structure_moves_away_from_one(model):
    stats = _constructed_stats(model)
    factors = alignment_factors(model, stats)
    for layer in factors.heads:
        assert float(layer[0]) > 1.05 and float(layer[1]) < 0.95  # aligned head up, conflicting head down
    spread = torch.cat(factors.neurons)
    assert float((spread - 1).abs().max()) > 0.01
    paper = alignment_factors(model, stats, DAIConfig(alignment="paper"))
    assert float(torch.cat(paper.heads).sub(1).abs().max()) < 1e-3  # the published term: factor stays 1
    scores = structure_scores(model, "gaprune", stats)
    same = structure_scores(model, "gaprune", stats, DAIConfig(alignment="paper"))
    assert not torch.allclose(scores.heads[0], same.heads[0])


def test_dai_normalisation_makes_fisher_count(model):
    stats = _constructed_stats(model)
    raw = weight_scores(model, "gaprune", stats, DAIConfig(normalize=False))
    magnitude = weight_scores(model, "magnitude")
    name = next(iter(raw))
    # raw units: Fisher * |W| ~ 1e-7 next to gamma * sqrt|W|, so the order is magnitude's
    assert torch.equal(torch.argsort(raw[name].flatten()), torch.argsort(magnitude[name].flatten()))
    normalised = weight_scores(model, "gaprune", stats)
    assert not torch.equal(
        torch.argsort(normalised[name].flatten()), torch.argsort(magnitude[name].flatten())
    )


# ---- every method x granularity --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("structure", ["unstructured", "2:4", "heads", "ffn", "layers", "heads+ffn"])
def test_every_method_prunes_every_granularity(model, tokenizer, calibration, stats, method, structure):
    result = compress(
        model,
        tokenizer,
        method=method,
        structure=structure,
        sparsity=0.5,
        calibration=calibration,
        statistics=stats,
    )
    pruned, report = result.model, result.report
    outputs = _outputs(pruned, tokenizer)
    assert torch.isfinite(outputs["rank"]).all() and torch.isfinite(outputs["token"]).all()
    linears = prunable_linears(pruned)
    if structure == "2:4":
        assert all(is_nm_sparse(linear.weight, 2, 4) for linear in linears.values())
        groups = torch.cat([(linear.weight.reshape(-1, 4) != 0).sum(1) for linear in linears.values()])
        assert bool((groups == 2).all())  # exactly 2 of every 4 (random weights have no zeros of their own)
    elif structure == "unstructured":
        for linear in linears.values():
            assert bool(((linear.weight == 0).sum(1) == linear.in_features // 2).all())
    else:
        assert report["weight_sparsity"] == 0.0
        assert report["parameters_after"]["layers"] < report["parameters_before"]["layers"]
    shapes = structure_of(pruned.encoder)
    if structure in ("heads", "heads+ffn"):
        assert [s.attention_heads for s in shapes.layers] == [2, 2, 2]
    if structure in ("ffn", "heads+ffn"):
        assert [s.intermediate_size for s in shapes.layers] == [32, 32, 32]
    if structure == "layers":
        assert pruned.backbone_config.num_hidden_layers == 2 and len(shapes.layers) == 2
    assert structure_of(model.encoder).layers[0].attention_heads == 4  # the input model is untouched


@pytest.mark.parametrize("structure", ["heads", "ffn", "layers", "heads+ffn"])
def test_structured_model_saves_loads_and_runs_with_identical_outputs(
    tmp_path, model, tokenizer, calibration, stats, structure
):
    from ragprune.pipeline import RerankPruner

    result = compress(
        model,
        tokenizer,
        method="gaprune",
        structure=structure,
        sparsity=0.5,
        calibration=calibration,
        statistics=stats,
    )
    folder = result.save(tmp_path / structure)
    assert json.loads((folder / "compression.json").read_text())["structure"] == structure
    again, _ = load_model(folder)
    assert structure_of(again.encoder) == structure_of(result.model.encoder)
    assert parameter_counts(again) == parameter_counts(result.model)
    before, after = _outputs(result.model, tokenizer), _outputs(again, tokenizer)
    assert torch.equal(before["rank"], after["rank"]) and torch.equal(before["token"], after["token"])
    with (
        RerankPruner(result.model, tokenizer, device="cpu") as in_memory,
        RerankPruner.load(folder, device="cpu") as loaded,
    ):
        first, second = in_memory.process(QUERY, TEXTS), loaded.process(QUERY, TEXTS)
    assert [p.logit for p in first] == [p.logit for p in second]
    assert [p.kept_spans for p in first] == [p.kept_spans for p in second]


def test_removing_heads_and_neurons_that_contribute_nothing_changes_no_output(model, tokenizer):
    silent = _copy(model)
    with torch.no_grad():
        for layer in silent.encoder.encoder.layer:
            layer.attention.output.dense.weight[:, 8:16] = 0  # head 1 writes nothing
            layer.output.dense.weight[:, 40:] = 0  # FFN neurons 40..63 write nothing
    reference = _outputs(silent, tokenizer)
    prune_heads(silent, [[0, 2, 3]] * 3)
    prune_neurons(silent, [list(range(40))] * 3)
    pruned = _outputs(silent, tokenizer)
    torch.testing.assert_close(pruned["rank"], reference["rank"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pruned["token"], reference["token"], atol=1e-5, rtol=1e-5)
    assert [s.attention_heads for s in silent.config.encoder_structure.layers] == [3, 3, 3]


def test_kept_counts_round_and_keep_one():
    assert kept_count(12, 0.5) == 6 and kept_count(12, 0.7) == 4 and kept_count(2, 0.9) == 1
    assert [kept_count(6, s) for s in (0.25, 0.5, 0.7)] == [5, 3, 2]
    assert kept_count(1536, 0.7, multiple=8) == 464 and kept_count(64, 0.5, multiple=8) == 32
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        kept_count(12, 1.0)


# ---- recovery, measurement, errors -----------------------------------------------------------------


def test_recovery_keeps_masked_weights_zero_and_lowers_the_loss(model, tokenizer, calibration, stats):
    result = compress(
        model,
        tokenizer,
        method="wanda",
        structure="unstructured",
        sparsity=0.7,
        calibration=calibration,
        statistics=stats,
    )
    zeros = {name: linear.weight == 0 for name, linear in prunable_linears(result.model).items()}
    report = distill(
        result.model, model, calibration.all_batches(), RecoveryConfig(steps=30, lr=1e-3), result.masks, "cpu"
    )
    assert report["last_loss"] < report["first_loss"]
    for name, linear in prunable_linears(result.model).items():
        assert bool((linear.weight[zeros[name]] == 0).all())


def test_recovery_on_its_own_unlabelled_groups(model, tokenizer, calibration, stats):
    unlabelled = [
        CalibrationGroup(query, tuple(CalibrationPassage(t, gold_spans=None) for t in texts), "u")
        for query, texts in (
            ("what does insulin do", [EXTRA[2], TEXTS[0], EXTRA[3], TEXTS[3]]),
            ("where is the nile", [EXTRA[1], TEXTS[1], EXTRA[0], TEXTS[2]]),
            ("does aspirin thin blood", [EXTRA[0], EXTRA[2], TEXTS[1], EXTRA[3]]),
        )
    ]
    options = dict(method="wanda", structure="unstructured", sparsity=0.7, calibration=calibration)
    recovery = RecoveryConfig(steps=20, lr=1e-3, groups_per_step=2)
    result = compress(
        model, tokenizer, **options, statistics=stats, recovery=recovery, recovery_groups=unlabelled
    )
    assert result.report["recovery_data"] == {"groups": 3, "batches": 2, "teacher_scored_groups": 0}
    assert result.report["recovery"]["last_loss"] < result.report["recovery"]["first_loss"]
    zeros = [bool((linear.weight == 0).any()) for linear in prunable_linears(result.model).values()]
    assert all(zeros)  # the masks still hold after recovery
    with pytest.raises(ValueError, match="pass tokenizer="):
        compress(model, None, **options, statistics=stats, recovery=recovery, recovery_groups=unlabelled)
    with pytest.raises(ValueError, match="groups_per_step >= 1"):
        RecoveryConfig(groups_per_step=0)
    with pytest.raises(ValueError, match="has no relevant passage.*serve recovery only"):
        CalibrationSet("general", unlabelled)  # calibration's rank loss needs labels: refused


def test_layer_maps_pair_student_and_teacher_layers():
    assert layer_map(4, 6) == [1, 2, 4, 5]  # TinyBERT's uniform mapping
    assert layer_map(3, 6) == [1, 3, 5] and layer_map(2, 6) == [2, 5] and layer_map(6, 6) == list(range(6))
    assert layer_map(1, 3) == [2] and layer_map(5, 6)[-1] == 5
    with pytest.raises(ValueError, match="1 <= student layers <= teacher layers"):
        layer_map(4, 3)
    # a kept layer learns the output of the last teacher layer it stands for
    assert kept_layer_map([0, 1, 2, 5], 6) == [0, 1, 4, 5] and kept_layer_map([0, 1, 2, 3], 6) == [0, 1, 2, 5]
    assert kept_layer_map([2, 0], 3) == [1, 2] and kept_layer_map([1], 2) == [1]
    assert kept_layer_map(range(6), 6) == list(range(6))
    for bad in ([], [0, 0], [0, 6]):
        with pytest.raises(ValueError, match="distinct layers within 0..5"):
            kept_layer_map(bad, 6)


def test_forward_returns_every_layer_on_request(model, tokenizer):
    batch = _batch(tokenizer)
    with torch.no_grad():
        plain = model(**batch)
        layered = model(**batch, layers=True)
        states = model.encoder(**batch, output_hidden_states=True).hidden_states
    assert "layers" not in plain
    assert layered["layers"].shape[0] == model.backbone_config.num_hidden_layers == 3
    assert torch.equal(layered["layers"][-1], plain["hidden"]) and torch.equal(
        layered["hidden"], plain["hidden"]
    )
    assert torch.equal(layered["layers"][0], states[1])  # the first layer's output, not the embeddings'
    assert torch.equal(layered["rank"], plain["rank"])


def test_kept_layers_chosen_by_the_caller(model, tokenizer, calibration):
    plain = dict(method=None, structure="layers", sparsity=0.34, calibration=calibration)
    result = compress(model, tokenizer, **plain, keep_layers=[2, 0])  # no statistics are needed
    assert result.report["kept"] == {"layers": [0, 2]} and result.report["keep_layers"] == [0, 2]
    assert result.report["method"] is None and result.model.backbone_config.num_hidden_layers == 2
    dense_layers = [layer.attention.self.query.weight for layer in model.encoder.encoder.layer]
    kept_layers = [layer.attention.self.query.weight for layer in result.model.encoder.encoder.layer]
    assert torch.equal(kept_layers[1], dense_layers[2]) and torch.equal(kept_layers[0], dense_layers[0])
    for bad, message in (
        ([0, 1, 2], r"keeps 2 of 3 layers, but 3 are listed: use sparsity 0.0000 \(--sparsity\)"),
        ([0, 3], r"distinct layers within 0..2"),
        ([1, 1], r"distinct layers within 0..2"),
    ):
        with pytest.raises(ValueError, match=message):
            compress(model, tokenizer, **plain, keep_layers=bad)
    with pytest.raises(ValueError, match=r"apply to structure layers \(--structure layers\), not 'heads'"):
        compress(model, tokenizer, **{**plain, "structure": "heads"}, keep_layers=[0, 1])
    with pytest.raises(ValueError, match="not both"):
        compress(model, tokenizer, **{**plain, "method": "magnitude"}, keep_layers=[0, 1])
    with pytest.raises(ValueError, match="not both"):
        compress(model, tokenizer, **plain)


def test_layer_wise_recovery_pairs_layers_and_moves_them(model, tokenizer, calibration):
    plain = dict(method=None, structure="layers", sparsity=0.34, keep_layers=[0, 1])
    targets = {}
    for mapping in ("kept", "uniform"):  # keeping 0 and 1 of 3: [0, 2] by the kept layers, [1, 2] uniform
        recovery = RecoveryConfig(steps=2, lr=1e-3, layer_weight=1.0, layer_map=mapping)
        result = compress(model, tokenizer, **plain, calibration=calibration, recovery=recovery)
        targets[mapping] = result.report["recovery"]["layer_targets"]
    assert targets == {"kept": [0, 2], "uniform": [1, 2]}
    # with the uniform pairing the first layer (a copy of dense layer 0) learns dense layer 1's output: it
    # ends closer to it than after the same recovery without the term
    batch, errors = _batch(tokenizer), {}
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        dense = model(**batch, layers=True)["layers"]
    for weight in (0.0, 100.0):
        student = compress(model, tokenizer, **plain).model
        config = RecoveryConfig(steps=25, lr=1e-3, layer_weight=weight)
        report = distill(student, model, calibration.all_batches(), config, device="cpu")
        assert report["last_loss"] < report["first_loss"] and report["config"]["layer_weight"] == weight
        assert report.get("layer_targets") == ([1, 2] if weight else None)
        with torch.no_grad():
            first = student(**batch, layers=True)["layers"][0]
        errors[weight] = float((first[real] - dense[1][real]).pow(2).mean())
    assert errors[100.0] < 0.5 * errors[0.0], errors
    # the term reads real tokens only, and every pair but the last (the hidden term's)
    config = RecoveryConfig(layer_weight=1.0)
    group = calibration.all_batches()[0]
    inputs = model_inputs(group, "cpu")
    with torch.no_grad():
        target, output = model(**inputs, layers=True), student(**inputs, layers=True)
    rank_loss = ListwiseDistillationLoss(temperature=1.0, gold_mix=0.0)
    loss = _distillation_loss(output, target, group, rank_loss, config, [1, 2])
    padding = ~group["attention_mask"].bool()
    assert padding.any()
    moved = output["layers"].clone()
    moved[:, padding] += 5.0
    same = _distillation_loss({**output, "layers": moved}, target, group, rank_loss, config, [1, 2])
    assert torch.allclose(loss, same)
    shifted = output["layers"].clone()
    shifted[0][~padding] += 1.0
    assert _distillation_loss({**output, "layers": shifted}, target, group, rank_loss, config, [1, 2]) > loss
    assert torch.allclose(  # a change in the last layer's entry is not a layer-term change
        _distillation_loss({**output, "layers": shifted.flip(0)}, target, group, rank_loss, config, [0, 2]),
        _distillation_loss({**output, "layers": shifted.flip(0)}, target, group, rank_loss, config, [0, 1]),
    )
    one_layer = compress(
        model, tokenizer, method=None, structure="layers", sparsity=0.7, keep_layers=[2]
    ).model
    with pytest.raises(ValueError, match="the student has one layer"):
        distill(one_layer, model, calibration.all_batches(), RecoveryConfig(steps=1, layer_weight=1.0))
    with pytest.raises(ValueError, match=r"one teacher layer \(0..2\) per student layer \(2\)"):
        distill(student, model, calibration.all_batches(), config, layer_targets=[0, 3])
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="layer_weight must be >= 0"):
            RecoveryConfig(layer_weight=bad)
    with pytest.raises(ValueError, match="layer_map must be one of"):
        RecoveryConfig(layer_map="nearest")


def _batch(tokenizer) -> dict[str, torch.Tensor]:
    batch = tokenizer([QUERY] * len(TEXTS), TEXTS, return_tensors="pt", padding=True)
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def test_msmarco_dev_groups_leave_out_the_evaluation_sets(tmp_path, monkeypatch):
    import gzip

    from ragprune.weight_pruning.calibration import msmarco_dev

    passages = {
        "dl19": {"e1": "Fleas live up to a year on a host."},
        "dl20": {"e2": "The Eiffel Tower is in Paris."},
        "dl21": {f"a{i}": f"Passage {i} about rivers and the Nile number {i}." for i in range(8)},
        "dl22-unjudged": {f"b{i}": f"Text {i} on chess boards and pieces {i}." for i in range(6)},
    }
    passages["dl21"]["a3"] = "Hippos wallow in the Nile."
    passages["dl21"]["a7"] = "Fleas live up to a year on a host."  # an evaluation text: left out
    topics = {
        "dl19": {"1": "how long do fleas live"},
        "dl20": {"2": "where is the eiffel tower"},
        "dl21": {"3": "rivers of africa"},
        "dl22-unjudged": {"4": "chess pieces"},
    }
    for name, texts in passages.items():
        folder = tmp_path / "trec-dl" / name
        folder.mkdir(parents=True)
        (folder / "topics.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in topics[name].items()))
        with gzip.open(folder / "passages.tsv.gz", "wt") as handle:
            handle.writelines(f"{pid}\t{text}\n" for pid, text in texts.items())
        (folder / "bm25.top100.trec").write_text(
            "".join(
                f"{q} Q0 {pid} {r + 1} {20 - r} bm25\n" for q in topics[name] for r, pid in enumerate(texts)
            )
        )
    (tmp_path / "msmarco").mkdir()
    (tmp_path / "msmarco" / "dev-small.queries.tsv").write_text(
        "10\tthe nile river\n11\tHow long do FLEAS live?\n12\tdo hippos wallow in the nile\n"
    )
    monkeypatch.setenv("RAGPRUNE_DATA", str(tmp_path))
    groups = msmarco_dev(candidates=4, seed=0, depth=10)
    queries = [g.query for g in groups]
    assert queries == [
        "the nile river",
        "do hippos wallow in the nile",
        "chess pieces",
    ]  # DL19 topic and DL21 left out
    for group in groups:
        assert len(group.passages) == 4 and group.source == "msmarco-dev"
        assert not any(p.relevant or p.gold_spans is not None for p in group.passages)
        assert all("Fleas" not in p.text for p in group.passages)
    assert groups[1].passages[0].text == "Hippos wallow in the Nile."  # the BM25 best leads
    (tmp_path / "msmarco" / "dev-small.queries.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="MS MARCO dev-small queries"):
        msmarco_dev(candidates=4, seed=0, depth=10)
    assert [p.text for p in groups[2].passages[:2]] == list(passages["dl22-unjudged"].values())[:2]


def test_score_pairs_gives_what_process_gives(tiny_model_dir):
    from ragprune.pipeline import RerankPruner

    model, tokenizer = load_model(tiny_model_dir)
    pairs = prepare_pairs_once(tokenizer, 64, [QUERY], [(0, text, "") for text in TEXTS], workers=0)
    columns = score_pairs(model, pairs, "cpu", pad_id=tokenizer.pad_token_id)
    with RerankPruner(model, tokenizer, device="cpu") as pruner:
        result = pruner.process(QUERY, TEXTS, reorder=False)
    assert columns.scores["rank"].tolist() == [p.logit for p in result]
    kept = [list(columns.sentence_kept[columns.sentences_of(i)]) for i in range(len(TEXTS))]
    assert kept == [[s.kept for s in p.sentences] for p in result]


def test_bad_options_name_the_fix(model, tokenizer, calibration):
    with pytest.raises(ValueError, match="use sparsity 0.5"):
        compress(model, tokenizer, method="magnitude", structure="2:4", sparsity=0.3)
    with pytest.raises(ValueError, match="unknown structure"):
        compress(model, tokenizer, method="magnitude", structure="rows", sparsity=0.3)
    with pytest.raises(ValueError, match="needs calibration data"):
        compress(model, tokenizer, method="fisher", structure="heads", sparsity=0.3)
    with pytest.raises(ValueError, match="recovery needs data"):
        compress(
            model, tokenizer, method="magnitude", structure="ffn", sparsity=0.3, recovery=RecoveryConfig(2)
        )
    with pytest.raises(ValueError, match="unknown structure"):
        compress(model, tokenizer, method="magnitude", structure="heads+heads", sparsity=0.3)
    only_domain = Calibration(
        {"domain": calibration.sets["domain"]}, {"domain": calibration.batches["domain"]}
    )
    with pytest.raises(ValueError, match="--general-data"):
        compress(model, tokenizer, method="gaprune", structure="heads", sparsity=0.3, calibration=only_domain)
    assert "CUDA" in (to_semi_structured(model) or "")


def test_cli_compress_end_to_end(tmp_path, tiny_model_dir, calibration, capsys):
    from ragprune.cli import main
    from ragprune.pipeline import RerankPruner

    domain, general = tmp_path / "domain.jsonl", tmp_path / "general.jsonl"
    calibration.sets["domain"].save(domain)
    calibration.sets["general"].save(general)
    output = tmp_path / "compressed"
    argv = [
        "compress",
        "--model",
        str(tiny_model_dir),
        "--method",
        "gaprune",
        "--structure",
        "ffn",
        "--sparsity",
        "0.5",
        "--domain-data",
        str(domain),
        "--general-data",
        str(general),
        "--candidates",
        str(CANDIDATES),
        "--recover-steps",
        "3",
        "--device",
        "cpu",
        "--output",
        str(output),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    report = json.loads((output / "compression.json").read_text())
    assert report["method"] == "gaprune" and report["recovery"]["steps"] == 3
    with RerankPruner.load(output, device="cpu") as pruner:
        assert len(pruner.process(QUERY, TEXTS)) == len(TEXTS)
    assert [s.intermediate_size for s in structure_of(load_model(output)[0].encoder).layers] == [32, 32]
    assert main(argv) == 2  # the output folder is not empty now
    assert "not an empty folder" in capsys.readouterr().err
    bad = argv[:-2] + ["--output", str(tmp_path / "other")]
    bad[bad.index("--structure") + 1] = "2:4"
    bad[bad.index("--sparsity") + 1] = "0.3"
    assert main(bad) == 2 and "use sparsity 0.5" in capsys.readouterr().err
    recovered = tmp_path / "recovered"
    own = argv[: argv.index("--recover-steps")] + [
        "--recover-steps",
        "2",
        "--recover-data",
        str(general),
        "--recover-groups-per-step",
        "2",
        "--vocabulary-size",
        "2500",
        "--device",
        "cpu",
        "--output",
        str(recovered),
    ]
    assert main(own) == 0, capsys.readouterr().err
    report = json.loads((recovered / "compression.json").read_text())
    assert report["recovery_data"] == {"groups": 2, "batches": 1, "teacher_scored_groups": 0}
    vocabulary = report["vocabulary"]  # counted on the recovery groups' texts (fewer than 2,500 here)
    assert vocabulary["after"] <= 2500 < vocabulary["before"] and vocabulary["occurrences"] > 0
    # another recovery seed: the same pruned structure and vocabulary (so the two can be averaged)
    reseeded = tmp_path / "reseeded"
    assert main(own[:-1] + [str(reseeded), "--recover-seed", "5"]) == 0, capsys.readouterr().err
    again = json.loads((reseeded / "compression.json").read_text())
    assert report["recovery"]["config"]["seed"] == 0 and again["recovery"]["config"]["seed"] == 5
    assert report["sampling_seed"] == again["sampling_seed"] == 0
    assert again["vocabulary"] == vocabulary
    assert load_model(reseeded)[1].get_vocab() == load_model(recovered)[1].get_vocab()
    # an external teacher mixed into recovery's rank target, scored for exactly these groups
    groups = load_source(general, CANDIDATES)
    scores = tmp_path / "teacher.tsv.gz"
    write_teacher_scores(scores, groups, [[float(i) for i in range(CANDIDATES)] for _ in groups])
    taught = own[:-1] + [str(tmp_path / "taught"), "--recover-teacher", str(scores)]
    assert main(taught) == 0, capsys.readouterr().err
    assert "--recover-teacher scores 2 of 2 recovery groups" in capsys.readouterr().err
    report = json.loads((tmp_path / "taught" / "compression.json").read_text())
    assert report["recovery_data"]["teacher_scored_groups"] == 2
    assert report["recovery"]["config"]["teacher_weight"] == 0.5
    half = tmp_path / "half.tsv.gz"  # scores for one of the two groups only
    write_teacher_scores(half, groups[:1], [[1.0, 2.0, 3.0, 4.0]])
    assert main(own[:-1] + [str(tmp_path / "t4"), "--recover-teacher", str(half)]) == 0
    assert "scores 1 of 2 recovery groups (the rest: the dense model's" in capsys.readouterr().err
    assert main(own[:-1] + [str(tmp_path / "t5"), "--recover-teacher-weight", "0.3"]) == 2
    assert "applies to --recover-teacher FILE" in capsys.readouterr().err
    other = tmp_path / "other.tsv.gz"
    write_teacher_scores(other, [_group("q", EXTRA[0], EXTRA[1:4], "x")], [[1.0, 2.0, 3.0, 4.0]])
    assert main(own[:-1] + [str(tmp_path / "t2"), "--recover-teacher", str(other)]) == 2
    assert "scores none of these 2 groups" in capsys.readouterr().err
    assert main(argv[:-2] + ["--recover-teacher", str(scores), "--output", "x"]) == 2
    assert "pass --recover-data" in capsys.readouterr().err
    heavy = ["--recover-teacher", str(scores), "--recover-teacher-weight", "1.5"]
    assert main(own[:-1] + [str(tmp_path / "t3")] + heavy) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert main(argv[:-2] + ["--recover-data", str(general), "--recover-steps", "0", "--output", "x"]) == 2
    assert "--recover-data needs --recover-steps" in capsys.readouterr().err
    assert main(argv[:-2] + ["--recover-seed", "1", "--recover-steps", "0", "--output", "x"]) == 2
    assert "--recover-seed needs --recover-steps" in capsys.readouterr().err
    assert main(argv[:-2] + ["--recover-groups-per-step", "4", "--output", "x"]) == 2
    assert "applies to --recover-data groups" in capsys.readouterr().err
    # layer-wise recovery (a 2-layer student of the 2-layer model: FFN pruning keeps the layers)
    common = [
        "compress",
        "--model",
        str(tiny_model_dir),
        "--recover-steps",
        "2",
        "--recover-data",
        str(general),
        "--candidates",
        str(CANDIDATES),
        "--device",
        "cpu",
    ]
    layered = common + [
        "--method",
        "magnitude",
        "--structure",
        "ffn",
        "--sparsity",
        "0.5",
        "--recover-layer-weight",
        "1",
        "--output",
        str(tmp_path / "layered"),
    ]
    assert main(layered) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "layered" / "compression.json").read_text())
    assert report["recovery"]["layer_targets"] == [0, 1] and report["recovery"]["config"]["layer_weight"] == 1
    # layers chosen by the caller: no --method, no calibration data
    keep = ["--structure", "layers", "--sparsity", "0.5", "--keep-layers", "1"]
    assert main(common + keep + ["--output", str(tmp_path / "chosen")]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "chosen" / "compression.json").read_text())
    assert report["keep_layers"] == [1] and report["method"] is None
    assert "(layers [1], layers, sparsity 0.5)" in capsys.readouterr().out
    assert load_model(tmp_path / "chosen")[0].backbone_config.num_hidden_layers == 1
    refused = {
        "leave out --method": keep + ["--method", "magnitude"],
        "--keep-layers 0 1: sparsity 0.5 keeps 1 of 2 layers, but 2 are listed": keep[:-1] + ["0", "1"],
        "--method is required": keep[:-2],
        "and --keep-layers keeps one": keep + ["--recover-layer-weight", "1"],
        "--recover-layer-weight must be >= 0, got nan": keep + ["--recover-layer-weight", "nan"],
        "apply to structure layers (--structure layers), not 'heads'": ["--structure", "heads"] + keep[2:],
    }
    for message, options in refused.items():
        assert main(common + options + ["--output", str(tmp_path / "refused")]) == 2, message
        assert message in capsys.readouterr().err
    no_data = [a for a in argv if a not in (str(general),)]
    no_data = no_data[: no_data.index("--general-data")] + no_data[no_data.index("--general-data") + 1 :]
    assert main(no_data[:-1] + [str(tmp_path / "third")]) == 2
    assert "needs --general-data" in capsys.readouterr().err


def _copy(model: RerankPruneModel) -> RerankPruneModel:
    import copy

    return copy.deepcopy(model)
