"""Train the joint rerank + prune model (Provence design) from the data built by ``build_data.py``.

Read top to bottom: load the training groups, tokenize every passage and query once, then each step
takes a few queries with a group of candidates each and trains, in one encoder pass per pair,
  * the rank head by listwise distillation: KL(softmax(teacher / tau), softmax(student)), with the
    gold passage (where the source names one) mixed into the target;
  * the token head by a sentence-level contrast loss (``ragprune.training.losses.SentenceContrastLoss``)
    against sentence labels: gold where the source has them, otherwise silver (the best-matching
    sentences of the passage the teacher ranks first); every sentence of a non-relevant passage is
    "drop", at a reduced weight; plus, each step, spliced passages from ``build_spliced.py`` whose
    gold sits at a random position among sentences that do not answer.
After each epoch the model reranks the DL21 validation slice (a training split: tuning is allowed
there, never on DL19/DL20/BEIR). At the end it fits Platt calibration of the rank logit on DL21,
calibrates the sentence probabilities on the held-out training questions (folded into the token head,
so thresholds read as probabilities), picks a round default threshold there, then saves fp16 weights.

Runs unattended on one GPU (bf16) or, tiny, on the CPU (the tests run a smoke version).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # data_files.py beside this file

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from data_files import read_jsonl  # noqa: E402

from ragprune.devices import default_device  # noqa: E402
from ragprune.models import RerankPruneConfig, RerankPruneModel, load_tokenizer  # noqa: E402
from ragprune.models.config import Calibration, Provenance  # noqa: E402
from ragprune.pipeline import RerankPruner  # noqa: E402
from ragprune.pipeline.collate import pad_rows  # noqa: E402
from ragprune.pipeline.encoding import (  # noqa: E402
    PairTemplate,
    TokenizedPassage,
    build_rows,
    tokenize_passages,
)
from ragprune.pipeline.results import require_rethresholdable  # noqa: E402
from ragprune.training.labels import GOLD_SHARE, covered_share  # noqa: E402
from ragprune.training.losses import IGNORE, SentenceContrastLoss, sentence_probabilities  # noqa: E402

log = logging.getLogger("train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path(".cache/train"), help="folder written by build_data.py")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--backbone", type=Path, help="Hugging Face encoder folder to start from (new heads)")
    start.add_argument("--init", type=Path, help="ragprune model folder to continue from (warm start)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (model/, train.log, summary.json, checkpoint.pt)",
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--group-size", type=int, default=16, help="candidates per query per step")
    p.add_argument("--queries-per-step", type=int, default=16)
    p.add_argument("--lr", type=float, default=7e-5)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.05, help="share of steps with linear warm-up")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument(
        "--tau", type=float, default=1.0, help="teacher temperature (teacher scores are z-scored per query)"
    )
    p.add_argument(
        "--gold-mix", type=float, default=0.3, help="weight of the gold passage in the rank target"
    )
    p.add_argument("--token-weight", type=float, default=1.0, help="weight of the token loss")
    p.add_argument(
        "--irrelevant-weight",
        type=float,
        default=0.25,
        help="token-loss weight of a passage whose sentences are all 'drop' because it is not relevant",
    )
    p.add_argument("--silver-weight", type=float, default=0.5, help="token-loss weight of a silver passage")
    p.add_argument("--pair-weight", type=float, default=1.0, help="weight of the within-passage pair term")
    p.add_argument("--pair-margin", type=float, default=2.0, help="logit margin of the pair term")
    p.add_argument(
        "--spliced-per-step", type=int, default=32, help="spliced passages per step (0: none, or no file)"
    )
    p.add_argument(
        "--silver-margin",
        type=float,
        default=0.1,
        help="silver: keep sentences within this cosine of the best",
    )
    p.add_argument(
        "--silver-min-cos",
        type=float,
        default=0.5,
        help="silver: MPNet cosine the teacher's top passage needs to count as relevant",
    )
    p.add_argument(
        "--target-recall", type=float, default=0.92, help="pruning threshold: held-out gold recall to keep"
    )
    p.add_argument(
        "--calibrate-sentences",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit sentence-probability calibration on held-out training questions into the token head",
    )
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    p.add_argument("--valid-queries", type=int, default=0, help="limit DL21 validation queries (0: all)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    return p.parse_args(argv)


# ---- labels ------------------------------------------------------------------------------------


def sentence_labels(
    passage: TokenizedPassage,
    gold_spans: list[list[int]] | None,
    cosines: list[float] | None,
    relevant: bool,
    margin: float,
) -> np.ndarray:
    """1 = keep, 0 = drop, per sentence of the passage (as the pipeline splits it)."""
    n = len(passage.sentences)
    if gold_spans is not None:
        return np.asarray(
            [covered_share((s.start, s.end), gold_spans) >= GOLD_SHARE for s in passage.sentences], float
        )
    if not relevant or not cosines or len(cosines) != n:
        return np.zeros(n)
    best = max(cosines)
    return np.asarray([c >= best - margin for c in cosines], float)


@dataclass
class Candidate:
    pid: str
    teacher: float
    labels: np.ndarray  # per sentence
    weight: float = 1.0  # of the passage in the token loss


@dataclass
class Group:
    qid: str
    query: str
    query_ids: np.ndarray
    candidates: list[Candidate]
    gold: set[str]


def build_groups(
    records: list[dict],
    pool_index: dict[str, int],
    passages: list[TokenizedPassage],
    query_ids: dict[str, np.ndarray],
    cosines: dict[tuple[str, str], list[float]],
    args: argparse.Namespace,
) -> list[Group]:
    groups = []
    for record in records:
        candidates = [c for c in record["candidates"] if c["pid"] in pool_index]
        if len(candidates) < 2:
            continue
        teacher = np.asarray([c["teacher"] for c in candidates], float)
        z = (teacher - teacher.mean()) / (teacher.std() + 1e-6)
        top = int(np.argmax(z))
        gold = record.get("gold") or {}
        built = []
        for i, c in enumerate(candidates):
            passage = passages[pool_index[c["pid"]]]
            # gold passages are relevant, judged negatives are not; otherwise trust the teacher's top
            # passage only when it is close to the query in absolute terms (z-scores rank junk too)
            silver = (
                not gold and c.get("label") != 0 and i == top and c.get("mpnet", 0.0) >= args.silver_min_cos
            )
            relevant = c["pid"] in gold or silver
            labels = sentence_labels(
                passage,
                gold.get(c["pid"]),
                cosines.get((record["qid"], c["pid"])),
                relevant,
                args.silver_margin,
            )
            weight = 1.0 if c["pid"] in gold else args.silver_weight if silver else args.irrelevant_weight
            built.append(Candidate(c["pid"], float(z[i]), labels, weight))
        groups.append(Group(record["qid"], record["query"], query_ids[record["qid"]], built, set(gold)))
    return groups


# ---- batches -----------------------------------------------------------------------------------


def sample_group(group: Group, size: int, rng: random.Random) -> list[Candidate]:
    """Gold and the teacher's top 4 always, the rest drawn at random from the other candidates."""
    ranked = sorted(group.candidates, key=lambda c: -c.teacher)
    fixed = [c for c in ranked if c.pid in group.gold] + [c for c in ranked[:4] if c.pid not in group.gold]
    rest = [c for c in ranked if c not in fixed]
    chosen = fixed[:size] + rng.sample(rest, min(len(rest), max(0, size - len(fixed))))
    return sorted(chosen, key=lambda c: -c.teacher)


def collate(
    groups: list[Group],
    chosen: list[list[Candidate]],
    pool_index: dict[str, int],
    passages: list[TokenizedPassage],
    template: PairTemplate,
    max_length: int,
    pad_id: int,
) -> dict:
    examples = [
        (group.query_ids, passages[pool_index[c.pid]], c.labels, c.weight)
        for group, candidates in zip(groups, chosen)
        for c in candidates
    ]
    return collate_examples(examples, template, max_length, pad_id)


def collate_examples(
    examples: list[tuple[np.ndarray, TokenizedPassage, np.ndarray, float]],
    template: PairTemplate,
    max_length: int,
    pad_id: int,
) -> dict:
    """Pad (query ids, passage, sentence labels, token-loss weight) examples into one batch.

    Only a passage's first row is encoded (training passages are built to fit the window); sentences
    with no token in it get no label. Returns tensors ``input_ids``/``token_type_ids``/``attention_mask``/
    ``sentence_ids`` ``[B, L]``, ``sentence_labels`` ``[B, S]`` and ``passage_weight`` ``[B]``.
    """
    rows = [build_rows(query, passage, template, max_length)[0] for query, passage, _, _ in examples]
    sentences = max(1, max(len(labels) for _, _, labels, _ in examples))
    sentence_labels = np.full((len(rows), sentences), IGNORE, dtype=np.int64)
    for r, (_, _, labels, _) in enumerate(examples):
        sentence_labels[r, : len(labels)] = labels
    return pad_rows(rows, pad_id).tensors() | {
        "sentence_labels": torch.from_numpy(sentence_labels),
        "passage_weight": torch.tensor([weight for *_, weight in examples], dtype=torch.float32),
    }


def rank_targets(
    groups: list[Group], chosen: list[list[Candidate]], tau: float, gold_mix: float
) -> torch.Tensor:
    targets = []
    for group, candidates in zip(groups, chosen):
        z = torch.tensor([c.teacher for c in candidates]) / tau
        target = torch.softmax(z, dim=0)
        gold = torch.tensor([c.pid in group.gold for c in candidates], dtype=torch.float)
        if gold.sum() > 0:
            target = (1 - gold_mix) * target + gold_mix * gold / gold.sum()
        targets.append(target)
    return torch.stack(targets)


# ---- validation, calibration, threshold ---------------------------------------------------------


def inference_copy(model: RerankPruneModel, tokenizer, device: torch.device) -> RerankPruner:
    """A pipeline over a copy of the model, so bf16 inference never touches the fp32 training weights."""
    return RerankPruner(copy.deepcopy(model).eval(), tokenizer, device=device, batch_size=256, progress=False)


def validate(pruner: RerankPruner, records: list[dict], texts: dict[str, str]) -> tuple[float, list]:
    """nDCG@10 of reranking the DL21 validation candidates; also returns (logit, relevance) pairs.

    Documents are keyed by their collection id (``docno``) where the data has it: DL21's top-100 holds
    exact-duplicate texts (one ``pid``) that are judged differently. The qrels are the judged candidates
    of the run only, so relevant passages outside the top-100 are not in the ideal ranking and the
    score reads higher than the official measure (use it to compare models, not against other tables).
    """
    import ir_measures

    doc_id = lambda c: c.get("docno", c["pid"])  # noqa: E731
    queries = [r["query"] for r in records]
    passages = [[{"id": doc_id(c), "text": texts[c["pid"]]} for c in r["candidates"]] for r in records]
    results = pruner.process(queries, passages)
    run, qrels, pairs = [], [], []
    for record, result in zip(records, results):
        labels = {doc_id(c): c["label"] for c in record["candidates"] if c["label"] is not None}
        for passage in result:
            run.append(ir_measures.ScoredDoc(record["qid"], passage.document.id, passage.logit))
            if passage.document.id in labels:
                pairs.append((passage.logit, labels[passage.document.id]))
        qrels += [ir_measures.Qrel(record["qid"], pid, rel) for pid, rel in labels.items()]
    return ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10], pairs


def fit_platt(pairs: list[tuple[float, int]]) -> tuple[float, float]:
    """Logistic fit of P(relevant: grade >= 2 | logit) on validation pairs."""
    x = torch.tensor([p[0] for p in pairs])
    y = torch.tensor([float(p[1] >= 2) for p in pairs])
    a, b = torch.ones(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([a, b], max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a * x + b, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(a.detach()), float(b.detach())


# thresholds tried for the default: token keep-probabilities of a model trained on sparse sentence labels
# sit far below 0.5, so the grid is dense near 0
THRESHOLD_GRID = tuple(float(t) for t in np.round(np.geomspace(0.0005, 0.9, 60), 4))


# once sentence probabilities are calibrated, the default is a round value (Provence's convention:
# about 0.1 conservative, 0.5 aggressive)
ROUND_THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def pick_threshold(
    pruner: RerankPruner,
    groups: list[Group],
    texts: dict[str, str],
    target: float,
    grid: tuple[float, ...] = THRESHOLD_GRID,
) -> dict:
    """Highest threshold in ``grid`` whose gold-sentence recall on held-out training questions is >= target.

    ``removed`` is the share of characters dropped over the candidates the groups hold.
    """
    require_rethresholdable(pruner.reduce)
    queries, passages, gold = [], [], []
    for group in groups:
        golds = [c for c in group.candidates if c.pid in group.gold]
        if not golds:
            continue
        queries.append(group.query)
        passages.append([{"id": c.pid, "text": texts[c.pid]} for c in group.candidates])
        gold.append({c.pid: c.labels for c in golds})
    results = pruner.process(queries, passages, threshold=0.0, reorder=False)
    scores_kept, tokens = [], []
    for result, gold_labels in zip(results, gold):
        for passage in result:
            scores = np.asarray([s.score for s in passage.sentences])
            lengths = np.asarray([len(s.span) for s in passage.sentences])
            labels = gold_labels.get(passage.document.id, np.zeros(len(scores)))
            scores_kept.append((scores, labels, lengths))
            tokens.append(lengths.sum())
    best = {"threshold": 0.0, "recall": 1.0, "removed": 0.0}
    for threshold in grid:
        hit = sum(((s > threshold) & (lab > 0)).sum() for s, lab, _ in scores_kept)
        total = sum((lab > 0).sum() for _, lab, _ in scores_kept)
        kept_chars = sum(length[s > threshold].sum() for s, _, length in scores_kept)
        recall = hit / max(1, total)
        if recall >= target:
            best = {
                "threshold": float(threshold),
                "recall": float(recall),
                "removed": float(1 - kept_chars / max(1, sum(tokens))),
            }
    return best


def token_outputs(
    model: RerankPruneModel,
    examples: list[tuple[np.ndarray, TokenizedPassage, np.ndarray, float]],
    template: PairTemplate,
    max_length: int,
    pad_id: int,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(token_logits, sentence_ids, sentence_labels)`` per batch of 128 examples (fp32, eval mode)."""
    batches = []
    model.eval()
    with torch.no_grad():
        for first in range(0, len(examples), 128):
            batch = collate_examples(examples[first : first + 128], template, max_length, pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            batches.append((out["token"].float(), batch["sentence_ids"], batch["sentence_labels"]))
    return batches


def heldout_pruning(
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], positions: list[str], threshold: float
) -> dict:
    """Sentence decisions at ``threshold`` on held-out answer-bearing passages: gold recall, share of the
    other sentences dropped, and gold recall by the gold block's position (spliced passages)."""
    kept, gold, where = [], [], []
    row = 0
    for logits, sentence_ids, labels in batches:
        probs, counts = sentence_probabilities(logits, sentence_ids, labels.shape[1])
        valid = (labels != IGNORE) & (counts > 0)
        for r in range(len(labels)):
            mask = valid[r]
            kept.append((probs[r][mask] > threshold).cpu().numpy())
            gold.append((labels[r][mask] == 1).cpu().numpy())
            where.append(positions[row] if row < len(positions) else "whole")
            row += 1
    k, g = np.concatenate(kept), np.concatenate(gold)
    by_position = {}
    for name in sorted(set(where)):
        rows = [i for i, w in enumerate(where) if w == name]
        hit = sum(int((kept[i] & gold[i]).sum()) for i in rows)
        total = sum(int(gold[i].sum()) for i in rows)
        by_position[name] = hit / total if total else None  # hop-negatives hold no gold
    return {
        "threshold": threshold,
        "gold_recall": float((k & g).sum() / max(1, g.sum())),
        "other_dropped": float((~k & ~g).sum() / max(1, (~g).sum())),
        "gold_recall_by_position": by_position,
    }


def fit_sentence_calibration(
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[float, float]:
    """Scale ``a`` and bias ``b`` of the token logits so that the sentence probability
    ``mean_t sigmoid(a * logit_t + b)`` fits P(sentence is gold) on held-out examples' token outputs
    (:func:`token_outputs`; maximum
    likelihood; Platt scaling, Platt 1999, applied before the pipeline's per-sentence mean).

    Being affine in the logit, the map folds into the token head's linear layer (:func:`fold_calibration`),
    so the pipeline and the kernel are unchanged and a threshold reads as a probability.
    """
    device = batches[0][0].device
    # a = exp(log_a) within [exp(-3), exp(2)]: a head that separates the held-out sentences cleanly
    # would otherwise drive the scale to infinity (maximum likelihood on separable data), leaving
    # probabilities of 0 and 1 and no threshold to choose
    log_a = torch.zeros(1, device=device, requires_grad=True)
    b = torch.zeros(1, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_a, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        a = log_a.clamp(-3.0, 2.0).exp()
        losses, count = [], 0
        for logits, sentence_ids, labels in batches:
            probs, counts = sentence_probabilities(a * logits + b, sentence_ids, labels.shape[1])
            valid = (labels != IGNORE) & (counts > 0)
            p = probs[valid].clamp(1e-4, 1 - 1e-4)
            losses.append(F.binary_cross_entropy(p, labels[valid].float(), reduction="sum"))
            count += int(valid.sum())
        loss = torch.stack(losses).sum() / max(1, count)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_a.detach().clamp(-3.0, 2.0).exp()), float(b.detach())


def fold_calibration(model: RerankPruneModel, scale: float, bias: float) -> None:
    """Make the token head output ``scale * logit + bias`` (in place)."""
    with torch.no_grad():
        head = model.head("token").out
        head.weight.mul_(scale)
        head.bias.mul_(scale).add_(bias)


# ---- data ---------------------------------------------------------------------------------------


@dataclass
class TrainingData:
    texts: dict[str, str]  # pool pid -> text
    valid: list[dict]  # DL21 validation records
    train_groups: list[Group]
    threshold_groups: list[Group]  # held-out gold-labelled training questions
    pool_index: dict[str, int]
    passages: list[TokenizedPassage]
    spliced: list[tuple[np.ndarray, TokenizedPassage, np.ndarray, float]]  # build_spliced.py, training
    valid_spliced: list[tuple[np.ndarray, TokenizedPassage, np.ndarray, float]]  # held out
    valid_spliced_positions: list[str]  # gold position of each held-out spliced passage ("" for hops)


def load_spliced(path: Path, tokenizer, args: argparse.Namespace) -> list:
    """``build_spliced.py`` records as (query ids, passage, sentence labels, weight 1) examples; an
    absent file gives none. Second-hop queries carry evidence, so they may use half the window."""
    if not path.is_file():
        return []
    records = read_jsonl(path)
    passages = tokenize_passages(tokenizer, [r["text"] for r in records], [""] * len(records))
    queries = tokenizer([r["query"] for r in records], add_special_tokens=False)["input_ids"]
    examples = []
    for record, passage, ids in zip(records, passages, queries):
        cap = args.max_length // (2 if record["kind"].startswith("hop") else 4)
        labels = sentence_labels(passage, record["gold"], None, True, args.silver_margin)
        examples.append((np.asarray(ids)[:cap], passage, labels, 1.0))
    return examples


def load_training_data(args: argparse.Namespace, tokenizer) -> TrainingData:
    """Read a ``build_data.py`` folder, tokenize every passage and query once, build the groups."""
    pool = read_jsonl(args.data / "pool.jsonl.gz")
    records = read_jsonl(args.data / "groups.jsonl.gz")
    pruning_records = read_jsonl(args.data / "valid_pruning.jsonl.gz")  # held out by build_data.py
    valid = read_jsonl(args.data / "valid_dl21.jsonl.gz")
    cosines = {(r["qid"], r["pid"]): r["cos"] for r in read_jsonl(args.data / "sentences.jsonl.gz")}
    if args.valid_queries:
        valid = valid[: args.valid_queries]
    log.info(
        "pool %d passages, %d training queries, %d validation queries", len(pool), len(records), len(valid)
    )
    t0 = time.time()
    passages = tokenize_passages(tokenizer, [p["text"] for p in pool], [""] * len(pool))
    pool_index = {p["pid"]: i for i, p in enumerate(pool)}
    with_queries = records + pruning_records
    encoded_queries = tokenizer([r["query"] for r in with_queries], add_special_tokens=False)["input_ids"]
    query_ids = {
        r["qid"]: np.asarray(ids)[: args.max_length // 4] for r, ids in zip(with_queries, encoded_queries)
    }
    log.info("tokenized in %.1fs", time.time() - t0)
    train_groups = build_groups(records, pool_index, passages, query_ids, cosines, args)
    threshold_groups = build_groups(pruning_records, pool_index, passages, query_ids, cosines, args)
    log.info(
        "%d training groups, %d held-out groups for the threshold", len(train_groups), len(threshold_groups)
    )
    spliced = load_spliced(args.data / "spliced.jsonl.gz", tokenizer, args)
    valid_spliced = load_spliced(args.data / "valid_spliced.jsonl.gz", tokenizer, args)
    path = args.data / "valid_spliced.jsonl.gz"
    positions = [r.get("position") or r["kind"] for r in read_jsonl(path)] if path.is_file() else []
    log.info("%d spliced training passages, %d held out", len(spliced), len(valid_spliced))
    return TrainingData(
        {p["pid"]: p["text"] for p in pool},
        valid,
        train_groups,
        threshold_groups,
        pool_index,
        passages,
        spliced,
        valid_spliced,
        positions,
    )


# ---- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "train.log")],
    )
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = torch.device(args.device or default_device())

    tokenizer = load_tokenizer(args.init or args.backbone)
    data = load_training_data(args, tokenizer)
    texts, valid, train_groups = data.texts, data.valid, data.train_groups
    pool_index, passages = data.pool_index, data.passages
    template = PairTemplate.from_tokenizer(tokenizer)

    if args.init:
        model = RerankPruneModel.from_pretrained(args.init).to(device)
    else:
        model = RerankPruneModel.from_backbone(args.backbone, RerankPruneConfig(max_length=args.max_length))
        model = model.to(device)
    token_criterion = SentenceContrastLoss(args.pair_weight, args.pair_margin)
    pad_id = tokenizer.pad_token_id or 0
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": args.lr}, {"params": head_params, "lr": args.head_lr}],
        weight_decay=0.01,
    )
    steps_per_epoch = math.ceil(len(train_groups) / args.queries_per_step)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    warmup = max(1, int(args.warmup * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    checkpoint_path = args.out / "checkpoint.pt"
    step, start_epoch, history, skipped = 0, 0, [], 0
    best_state, best_ndcg = None, -1.0
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, start_epoch, history, skipped = (
            state["step"],
            state["epoch"],
            state["history"],
            state["skipped"],
        )
        best_state, best_ndcg = state["best_state"], state["best_ndcg"]
        rng.setstate(state["rng"])
        log.info("resumed at epoch %d, step %d", start_epoch, step)

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for epoch in range(start_epoch, args.epochs):
        model.train()
        order = list(range(len(train_groups)))
        random.Random(args.seed + epoch).shuffle(order)
        t0 = time.time()
        for first in range(0, len(order), args.queries_per_step):
            if args.max_steps and step >= args.max_steps:
                break
            batch_groups = [train_groups[i] for i in order[first : first + args.queries_per_step]]
            size = min(args.group_size, min(len(g.candidates) for g in batch_groups))
            chosen = [sample_group(g, size, rng) for g in batch_groups]
            batch = collate(batch_groups, chosen, pool_index, passages, template, args.max_length, pad_id)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            scores = out["rank"].float().view(len(batch_groups), size)
            target = rank_targets(batch_groups, chosen, args.tau, args.gold_mix).to(device)
            rank_loss = F.kl_div(F.log_softmax(scores, dim=-1), target, reduction="batchmean")
            token_loss = token_criterion(
                out["token"], batch["sentence_ids"], batch["sentence_labels"], batch["passage_weight"]
            )
            if data.spliced and args.spliced_per_step:
                picks = [rng.choice(data.spliced) for _ in range(args.spliced_per_step)]
                spliced = collate_examples(picks, template, args.max_length, pad_id)
                spliced = {k: v.to(device, non_blocking=True) for k, v in spliced.items()}
                with autocast:
                    out_spliced = model(
                        spliced["input_ids"], spliced["attention_mask"], spliced["token_type_ids"]
                    )
                token_loss = token_loss + token_criterion(
                    out_spliced["token"],
                    spliced["sentence_ids"],
                    spliced["sentence_labels"],
                    spliced["passage_weight"],
                )
            loss = rank_loss + args.token_weight * token_loss
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                skipped += 1
                log.warning(
                    "step %d: non-finite loss (rank %s, token %s), batch skipped", step, rank_loss, token_loss
                )
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 50 == 0 or step == 1:
                log.info(
                    "epoch %d step %d/%d rank %.4f token %.4f lr %.2e (%.1f pairs/s)",
                    epoch,
                    step,
                    total_steps,
                    rank_loss.item(),
                    token_loss.item(),
                    scheduler.get_last_lr()[0],
                    (first + args.queries_per_step) * size / (time.time() - t0),
                )
        with inference_copy(model, tokenizer, device) as pruner:
            ndcg, _ = validate(pruner, valid, texts)
        history.append(
            {
                "epoch": epoch,
                "step": step,
                "dl21_ndcg@10": ndcg,
                "seconds": time.time() - t0,
                "skipped_batches": skipped,
            }
        )
        log.info("epoch %d: DL21 validation nDCG@10 %.4f", epoch, ndcg)
        if ndcg > best_ndcg:
            best_ndcg = ndcg
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "epoch": epoch + 1,
                "history": history,
                "skipped": skipped,
                "best_state": best_state,
                "best_ndcg": best_ndcg,
                "rng": rng.getstate(),
            },
            checkpoint_path,
        )
        if args.max_steps and step >= args.max_steps:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    return finish(model, tokenizer, device, data, args, {"history": history, "best_dl21_ndcg@10": best_ndcg})


def finish(
    model: RerankPruneModel,
    tokenizer,
    device: torch.device,
    data: TrainingData,
    args: argparse.Namespace,
    record: dict,
) -> dict:
    """Calibrate ``probability`` on DL21, pick the default threshold, save the fp16 model; the summary.

    ``record`` (validation history, best DL21 score, ...) goes into the saved config and the summary.
    """
    sentence_calibration = None
    gold_passages = [
        (group.query_ids, data.passages[data.pool_index[c.pid]], c.labels, 1.0)
        for group in data.threshold_groups
        for c in group.candidates
        if c.pid in group.gold
    ]
    heldout = data.valid_spliced + gold_passages
    template = PairTemplate.from_tokenizer(tokenizer)
    pad_id = tokenizer.pad_token_id or 0
    outputs = token_outputs(model, heldout, template, args.max_length, pad_id, device) if heldout else []
    if args.calibrate_sentences and outputs:
        sentence_calibration = fit_sentence_calibration(outputs)
        fold_calibration(model, *sentence_calibration)
        a, b = sentence_calibration  # the folded head's outputs, without another pass
        outputs = [(a * logits + b, sentence_ids, labels) for logits, sentence_ids, labels in outputs]
        log.info("sentence calibration (scale, bias) folded into the token head: %s", sentence_calibration)
    grid = ROUND_THRESHOLDS if sentence_calibration else THRESHOLD_GRID
    with inference_copy(model, tokenizer, device) as pruner:
        _, pairs = validate(pruner, data.valid, data.texts)
        threshold = pick_threshold(pruner, data.threshold_groups, data.texts, args.target_recall, grid)
    scale, bias = fit_platt(pairs)
    model.config.threshold = threshold["threshold"]
    if outputs:
        threshold["heldout_pruning"] = heldout_pruning(
            outputs, data.valid_spliced_positions, threshold["threshold"]
        )
        threshold["heldout_sweep"] = [
            heldout_pruning(outputs, data.valid_spliced_positions, t) for t in ROUND_THRESHOLDS
        ]
        log.info("held-out pruning at the default threshold: %s", threshold["heldout_pruning"])
    model.config.calibration = Calibration(scale, bias)
    model.config.provenance = Provenance(
        train_config=json.loads(json.dumps(vars(args), default=str)),
        history=record["history"],
        metrics={k.removeprefix("best_"): v for k, v in record.items() if k.startswith("best_")},
        threshold_selection=threshold,
        sentence_calibration=sentence_calibration,
    )
    model.cpu().save_pretrained(args.out / "model", tokenizer, dtype=torch.float16)
    summary = {**record, "threshold": threshold, "calibration": [scale, bias]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("saved %s: %s", args.out / "model", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
