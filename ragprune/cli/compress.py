"""``ragprune compress``: weight-prune a model (magnitude / Wanda / Fisher / GAPrune; masks or structure
removal), optionally recover it by distillation from the dense model, and save the smaller model folder."""

from __future__ import annotations

import argparse
from typing import Any

METHODS = ("magnitude", "wanda", "fisher", "gaprune")
STRUCTURES_HELP = (
    "unstructured (masks, per output row), N:M masks such as 2:4, heads, ffn (FFN neurons), layers, "
    "or heads+ffn; heads / ffn / layers really remove weights"
)
SOURCES_HELP = (
    "calibration sources (training data only): 'domain' / 'general' (the built-in recipes), a source name "
    "(scifact-train, dl21-biomedical, dl21-general, msmarco-triples, nq-train, wikiqa-train, "
    "hotpotqa-train, msmarco-dev), or files: calibration JSONL, pruning JSONL, triples / WikiQA-pairs TSV, "
    "TREC DL folder"
)


def _sparsity(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; use e.g. 0.5") from None
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1); the share of weights removed, e.g. 0.5")
    return number


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return number


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compress",
        help="weight-prune the encoder (GAPrune, Wanda, Fisher, magnitude) and save the smaller model",
        description="Score the encoder's weights or structures on calibration data with the model's own "
        "rank + token loss (or keep the layers --keep-layers names), prune them, optionally recover by "
        "distillation from the dense model, and save "
        "a model folder that loads everywhere (RerankPruner.load, --model). Writes compression.json beside "
        "the weights.",
    )
    parser.add_argument(
        "--model", default=None, help="model folder (default: the model shipped with ragprune)"
    )
    parser.add_argument(
        "--method", default=None, choices=METHODS, help="importance score (required unless --keep-layers)"
    )
    parser.add_argument("--structure", required=True, help=STRUCTURES_HELP)
    parser.add_argument(
        "--keep-layers",
        nargs="+",
        type=int,
        default=None,
        metavar="I",
        help="with --structure layers: the layers to keep (0-based, e.g. 0 1 2 5), instead of the ones an "
        "importance --method scores highest; as many as --sparsity keeps",
    )
    parser.add_argument(
        "--sparsity", required=True, type=_sparsity, help="share removed, in [0, 1), e.g. 0.5"
    )
    parser.add_argument("--domain-data", nargs="+", default=[], metavar="SRC", help=SOURCES_HELP)
    parser.add_argument("--general-data", nargs="+", default=[], metavar="SRC", help="as --domain-data")
    parser.add_argument(
        "--calibration-size",
        type=_count,
        default=128,
        help="groups k-means-sampled from each side's pool (default %(default)s)",
    )
    parser.add_argument(
        "--candidates", type=_count, default=8, help="passages per calibration group (default %(default)s)"
    )
    parser.add_argument(
        "--recover-steps",
        type=_count,
        default=0,
        help="distillation steps from the dense model after pruning (default 0: one-shot)",
    )
    parser.add_argument(
        "--recover-lr", type=float, default=1e-4, help="recovery learning rate (default 1e-4)"
    )
    parser.add_argument(
        "--recover-data",
        nargs="+",
        default=[],
        metavar="SRC",
        help="sources recovery trains on, every group of each (labels not needed, e.g. msmarco-dev: MS MARCO "
        "dev-small queries with BM25 candidates); default: the calibration groups. "
        + SOURCES_HELP.split(": ", 1)[1],
    )
    parser.add_argument(
        "--recover-groups-per-step",
        type=_count,
        default=1,
        help="--recover-data groups per distillation step (default %(default)s; e.g. 16, which with "
        "--candidates 16 is 256 encoder rows a step)",
    )
    parser.add_argument(
        "--recover-teacher",
        default=None,
        metavar="FILE",
        help="external teacher scores of the --recover-data groups (written by training/recovery_teacher.py "
        "for the same sources, --candidates and --seed), mixed into recovery's rank target",
    )
    parser.add_argument(
        "--recover-teacher-weight",
        type=float,
        default=None,
        metavar="W",
        help="share of --recover-teacher in the rank target, in [0, 1] (default 0.5; the rest is the "
        "dense model)",
    )
    parser.add_argument(
        "--recover-layer-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of layer-wise distillation: each earlier layer of the pruned model also matches the "
        "output of the dense layer it is paired with (default 0: only the last hidden states)",
    )
    parser.add_argument(
        "--recover-layer-map",
        choices=("kept", "uniform"),
        default="kept",
        help="pairing for --recover-layer-weight when layers were removed: kept (default: each kept layer "
        "learns the output of the last dense layer it stands for) or uniform (TinyBERT's m*N/M)",
    )
    parser.add_argument(
        "--dai-beta",
        type=float,
        default=0.25,
        help="GAPrune: weight of the general Fisher (default 0.25; the paper's code uses 1.0)",
    )
    parser.add_argument("--dai-gamma", type=float, default=0.5, help="GAPrune: weight of sqrt(|W|)")
    parser.add_argument(
        "--dai-alignment",
        choices=("structure", "paper"),
        default="structure",
        help="GAPrune: gradient alignment per structure (default) or the published per-weight term",
    )
    parser.add_argument(
        "--dai-raw", action="store_true", help="GAPrune: the DAI terms in raw units (no normalisation)"
    )
    parser.add_argument(
        "--vocabulary-size",
        type=_count,
        default=0,
        help="also trim the word embeddings to this many tokens: special and added tokens, single characters "
        "(about 2,000 for BERT/MiniLM, the minimum) and the most frequent tokens of --vocabulary-texts "
        "(default 0: keep the vocabulary)",
    )
    parser.add_argument(
        "--vocabulary-texts",
        nargs="+",
        default=[],
        metavar="FILE",
        help="training text whose tokens are counted: JSONL(.gz) (fields text, query, question, title) or "
        "plain text, one per line; never evaluation data (default: the --recover-data groups' texts)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the calibration and recovery groups' sampling, and of recovery unless --recover-seed "
        "(default 0)",
    )
    parser.add_argument(
        "--recover-seed",
        type=int,
        default=None,
        help="recovery's own seed (the order of its steps; default: --seed): students that differ only in "
        "it share the pruned structure and vocabulary, so their weights can be averaged",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--output",
        required=True,
        help="new model folder (its parent must exist; an existing one must be empty)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ragprune.cli import UserError
    from ragprune.cli.model_options import checked_device

    output = Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"--output {output} exists and is not an empty folder; choose a new folder")
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: the folder {output.parent} does not exist; create it first")
    if args.method is None and args.keep_layers is None:
        raise UserError("--method is required: magnitude, wanda, fisher or gaprune (or --keep-layers I ...)")
    if args.method is not None and args.keep_layers is not None:
        raise UserError("--keep-layers chooses the layers itself: leave out --method, or --keep-layers")
    needs = {"fisher": ["general"], "gaprune": ["domain", "general"], "wanda": ["any"]}.get(args.method, [])
    given = {"domain": bool(args.domain_data), "general": bool(args.general_data)}
    for side in needs:
        if side == "any" and not any(given.values()):
            raise UserError("--method wanda needs activations: pass --domain-data or --general-data")
        if side != "any" and not given[side]:
            raise UserError(f"--method {args.method} needs --{side}-data")
    if args.recover_steps and not (any(given.values()) or args.recover_data):
        raise UserError("--recover-steps needs data: pass --recover-data, or --domain-data / --general-data")
    if args.recover_data and not args.recover_steps:
        raise UserError("--recover-data needs --recover-steps N (the distillation steps, e.g. 2000)")
    if args.recover_seed is not None and not args.recover_steps:
        raise UserError("--recover-seed needs --recover-steps N (without recovery there is nothing to seed)")
    if args.recover_groups_per_step < 1:
        raise UserError("--recover-groups-per-step must be at least 1")
    if args.recover_groups_per_step != 1 and not args.recover_data:
        raise UserError(
            "--recover-groups-per-step applies to --recover-data groups (calibration batches hold one group "
            "each); pass --recover-data SRC ... or leave the option out"
        )
    if args.recover_teacher and not args.recover_data:
        raise UserError("--recover-teacher scores --recover-data groups: pass --recover-data SRC ... too")
    if args.recover_teacher_weight is not None and not args.recover_teacher:
        raise UserError("--recover-teacher-weight applies to --recover-teacher FILE: pass one, or neither")
    if not args.recover_layer_weight >= 0:  # also refuses nan
        raise UserError(f"--recover-layer-weight must be >= 0, got {args.recover_layer_weight}")
    if args.recover_layer_weight and not args.recover_steps:
        raise UserError("--recover-layer-weight needs --recover-steps N (it weighs a recovery loss term)")
    if args.recover_layer_weight and args.keep_layers is not None and len(args.keep_layers) < 2:
        raise UserError(
            "--recover-layer-weight pairs the layers before the last one, and --keep-layers keeps one: "
            "keep two or more layers, or leave out --recover-layer-weight"
        )
    if args.recover_teacher_weight is None:
        args.recover_teacher_weight = 0.5
    if not 0.0 <= args.recover_teacher_weight <= 1.0:
        raise UserError(f"--recover-teacher-weight must be in [0, 1], got {args.recover_teacher_weight}")
    if args.vocabulary_texts and not args.vocabulary_size:
        raise UserError("--vocabulary-texts needs --vocabulary-size N (the tokens to keep, e.g. 20000)")
    if args.vocabulary_size and not (args.vocabulary_texts or args.recover_data):
        raise UserError(
            "--vocabulary-size needs --vocabulary-texts FILE ... or --recover-data (training text to count "
            "tokens in)"
        )
    if args.candidates < 2:
        raise UserError("--candidates must be at least 2 (one relevant passage and a negative)")
    from ragprune.weight_pruning.api import check_options

    try:
        check_options(args.method, args.structure, args.sparsity)
    except ValueError as error:
        raise UserError(str(error)) from None

    import torch

    from ragprune.devices import default_device
    from ragprune.models.registry import load_model
    from ragprune.weight_pruning.api import build_calibration, compress
    from ragprune.weight_pruning.importance import DAIConfig
    from ragprune.weight_pruning.recovery import RecoveryConfig

    device = torch.device(checked_device(args.device) or default_device())
    model, tokenizer = load_model(args.model)
    if args.keep_layers is not None:
        from ragprune.weight_pruning.api import check_keep_layers

        try:  # before the (long) data reading
            check_keep_layers(
                args.keep_layers, args.structure, args.sparsity, model.backbone_config.num_hidden_layers
            )
        except ValueError as error:
            raise UserError(f"--keep-layers {' '.join(map(str, args.keep_layers))}: {error}") from None
    texts = _vocabulary_texts(args, tokenizer)  # checked before the (long) pruning and recovery
    recovery_groups = _recovery_groups(args)
    if args.vocabulary_size and not texts:  # count the recovery data's queries and passages
        texts = [text for group in recovery_groups for text in group.texts()]
    model.to(device)
    calibration = None
    if any(given.values()):
        calibration = build_calibration(
            model,
            tokenizer,
            domain=args.domain_data,
            general=args.general_data,
            size=args.calibration_size,
            candidates=args.candidates,
            seed=args.seed,
        )
        print(f"ragprune compress: calibration {calibration.summary()}", file=sys.stderr)
    dai = DAIConfig(
        beta=args.dai_beta, gamma=args.dai_gamma, alignment=args.dai_alignment, normalize=not args.dai_raw
    )
    result = compress(
        model,
        tokenizer,
        method=args.method,
        structure=args.structure,
        sparsity=args.sparsity,
        calibration=calibration,
        recovery=RecoveryConfig(
            steps=args.recover_steps,
            lr=args.recover_lr,
            groups_per_step=args.recover_groups_per_step,
            seed=args.seed if args.recover_seed is None else args.recover_seed,
            teacher_weight=args.recover_teacher_weight if args.recover_teacher else 0.0,
            layer_weight=args.recover_layer_weight,
            layer_map=args.recover_layer_map,
        ),
        recovery_groups=recovery_groups or None,
        dai=dai,
        keep_layers=args.keep_layers,
        device=device,
    )
    if texts:
        result.trim_vocabulary(texts, args.vocabulary_size)
    result.model.to("cpu")
    result.report["sampling_seed"] = args.seed  # recovery's own is in report["recovery"]["config"]
    result.save(output)
    report = result.report
    before, after = report["parameters_before"], report["parameters_after"]
    print(
        f"ragprune compress: wrote {output} ({args.method or 'layers ' + str(args.keep_layers)}, "
        f"{args.structure}, sparsity {args.sparsity}): "
        f"encoder parameters {before['encoder']:,} -> {after['encoder']:,}, layer weights nonzero "
        f"{before['nonzero_layers']:,} -> {after['nonzero_layers']:,}, {report['seconds']:.1f}s"
    )
    if "vocabulary" in report:
        vocabulary = report["vocabulary"]
        print(
            f"ragprune compress: vocabulary {vocabulary['before']:,} -> {vocabulary['after']:,} tokens, "
            f"{vocabulary['coverage']:.2%} of {vocabulary['occurrences']:,} counted token occurrences kept"
        )
    return 0


def _recovery_groups(args: argparse.Namespace) -> list[Any]:
    """Every group of the ``--recover-data`` sources (none without the option); ``UserError`` naming the
    option for a source that cannot be read."""
    if not args.recover_data:
        return []
    from ragprune.cli import UserError
    from ragprune.weight_pruning.calibration import load_source

    groups = []
    for source in args.recover_data:
        try:
            groups += load_source(source, args.candidates, args.seed)
        except (OSError, ValueError) as error:
            raise UserError(f"--recover-data {source}: {error}") from None
    if not groups:
        raise UserError(f"--recover-data: no group read from {' '.join(args.recover_data)}")
    if args.recover_teacher:
        import sys

        from ragprune.weight_pruning.calibration import with_teacher_scores

        try:
            groups, covered = with_teacher_scores(groups, args.recover_teacher)
        except (OSError, ValueError) as error:
            raise UserError(f"--recover-teacher: {error}") from None
        note = "" if covered == len(groups) else " (the rest: the dense model's rank target alone)"
        scored = f"{covered:,} of {len(groups):,} recovery groups{note}"
        print(f"ragprune compress: --recover-teacher scores {scored}", file=sys.stderr)
    return groups


def _vocabulary_texts(args: argparse.Namespace, tokenizer: Any) -> list[str]:
    """The texts of ``--vocabulary-texts`` (none without them), with the size checked against the
    tokenizer; ``UserError`` naming the option for a bad size, an unreadable file or no text at all."""
    if not args.vocabulary_size:
        return []
    from ragprune.cli import UserError
    from ragprune.data.errors import DataFormatError
    from ragprune.weight_pruning.vocabulary import TEXT_FIELDS, check_size, read_texts

    try:
        check_size(tokenizer, args.vocabulary_size)
    except ValueError as error:
        raise UserError(f"--vocabulary-size: {error}") from None
    if not args.vocabulary_texts:
        return []
    try:
        texts = read_texts(args.vocabulary_texts)
    except DataFormatError as error:
        raise UserError(f"--vocabulary-texts: {error}") from None
    if not texts:
        raise UserError(
            f"--vocabulary-texts: no text read from {' '.join(args.vocabulary_texts)}; JSONL records need a "
            f"string field among {', '.join(TEXT_FIELDS)}, other files one text per line"
        )
    return texts
