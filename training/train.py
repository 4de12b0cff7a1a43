"""Train the joint rerank + prune model (Provence design) from the data built by ``build_data.py``.

Read top to bottom: load the training groups, tokenize every passage and query once, then each step
takes a few queries with a group of candidates each and trains, in one encoder pass per pair,
  * the rank head by listwise distillation (``ragprune.training.losses.ListwiseDistillationLoss``):
    KL(softmax(teacher / tau), softmax(student)), with the gold passage (where the source names one)
    mixed into the target;
  * the token head by a sentence-level contrast loss (``ragprune.training.losses.SentenceContrastLoss``)
    against sentence labels: gold where the source has them, otherwise silver (the best-matching
    sentences of the passage the teacher ranks first); every sentence of a non-relevant passage is
    "drop", at a reduced weight; plus, each step, spliced passages from ``build_spliced.py`` whose
    gold sits at a random position among sentences that do not answer;
  * with ``--list-weight`` > 0, a listwise head over each group's ``[CLS]`` vectors and rank logits, by
    the rank head's loss (``ragprune.training.list_head.joint_list_loss``), so the encoder learns vectors
    a list module can use (issue 11; one process only).
After each epoch the model reranks the DL21 validation slice (a training split: tuning is allowed
there, never on DL19/DL20/BEIR). At the end (``ragprune.training.finalize``) it fits Platt calibration
of the rank logit on DL21, calibrates the sentence probabilities on the held-out training questions
(folded into the token head, so thresholds read as probabilities), picks a round default threshold
there, then saves fp16 weights with the whole ``TrainConfig`` (``model/train_config.json``).

Every setting is a ``ragprune.training.TrainConfig`` field; the options below are generated from it.
Runs unattended on one GPU (bf16) or, tiny, on the CPU (the tests run a smoke version). On several
GPUs, ``torchrun --nproc_per_node N training/train.py ...`` trains data-parallel
(``ragprune.training.distributed``): each rank takes its share of every epoch's groups with
``--queries-per-step`` queries per step (so a step sees N times as many), DDP averages the gradients, and
rank 0 alone validates, checkpoints and saves.
"""

from __future__ import annotations

import logging
import random
import time

import numpy as np
import torch

from ragprune.models import RerankPruneConfig, RerankPruneModel, load_tokenizer
from ragprune.models.config import HeadSpec
from ragprune.pipeline.encoding import PairTemplate
from ragprune.training.batching import collate_examples, collate_groups, to_device
from ragprune.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from ragprune.training.config import TrainConfig
from ragprune.training.data import load_training_data, sample_group
from ragprune.training.distributed import Distributed, rank_share, setup, teardown, wrap
from ragprune.training.finalize import finalize
from ragprune.training.list_head import ListHeadConfig, joint_list_loss, validate_list_modes
from ragprune.training.losses import ListwiseDistillationLoss, SentenceContrastLoss
from ragprune.training.optim import build_optimizer, schedule_steps, warmup_linear_decay
from ragprune.training.validation import RankingValidator, inference_pruner

log = logging.getLogger("train")

JOINT_GATE = 1.0
"""Start of the residual gate of a listwise head trained with the encoder (``--list-weight``)."""


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The run's configuration from the command line (one option per ``TrainConfig`` field)."""
    return TrainConfig.from_args(argv, description=__doc__.split("\n")[0])


def main(argv: list[str] | None = None) -> dict:
    """Train (one process, or one rank of a ``torchrun`` run); the run's summary on rank 0, ``{}`` on
    the other ranks."""
    config = parse_args(argv)
    context, device = setup(config.device)
    try:
        result = train(config, context, device)
    except BaseException:
        teardown(context, clean=False)
        raise
    teardown(context)
    return result


def train(config: TrainConfig, context: Distributed, device: torch.device) -> dict:
    """The run itself, read top to bottom (the module docstring says what it optimises); the summary of
    ``finalize`` on rank 0, ``{}`` on the other ranks."""
    if context.is_main:
        config.out.mkdir(parents=True, exist_ok=True)
    context.barrier()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if context.is_main:
        handlers.append(logging.FileHandler(config.out / "train.log"))
    logging.basicConfig(
        level=logging.INFO if context.is_main else logging.WARNING,
        format="%(asctime)s %(message)s",
        handlers=handlers,
    )
    log.info("config: %s", config.to_dict())
    if context.enabled:
        log.info("data-parallel: %d ranks on %s", context.world_size, device.type)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed + context.rank)  # ranks draw their own candidates and spliced passages
    settings = config.to_dict() | {"world_size": context.world_size}  # what a checkpoint is resumed with

    if config.list_weight and context.enabled:  # the head runs outside the DDP forward: no averaging
        raise ValueError("--list-weight trains on one process: run train.py without torchrun")

    # ---- data and model ---------------------------------------------------------------------------
    tokenizer = load_tokenizer(config.start)
    data = load_training_data(config, tokenizer)
    if len(data.train_groups) < context.world_size:
        raise ValueError(
            f"{len(data.train_groups)} training groups cannot be shared by {context.world_size} ranks; "
            "start fewer processes (torchrun --nproc_per_node)"
        )
    validator = RankingValidator.from_records(data.valid)
    template = PairTemplate.from_tokenizer(tokenizer)
    pad_id = tokenizer.pad_token_id or 0
    if config.init:
        model = RerankPruneModel.from_pretrained(config.init)
        # list-level heads were fitted to the starting encoder's vectors: retrain them on the result
        # (train_list_head.py) rather than ship them stale
        stale = list(model.heads_reading("candidates"))
        if stale:
            log.info("dropping list-level heads %s of the starting model", stale)
            model = model.without_heads(stale)
    else:
        model = RerankPruneModel.from_backbone(
            config.backbone, RerankPruneConfig(max_length=config.max_length)
        )
    if config.list_weight:
        model = model.with_head("listwise", HeadSpec("listwise", ListHeadConfig().head_options()))
        with torch.no_grad():  # the residual gate starts open: at 0 the list loss would reach no weight
            model.heads["listwise"].gate.fill_(JOINT_GATE)
    model = model.to(device)
    step_model = wrap(model, context, device)  # DDP starts every rank from rank 0's weights
    if context.rank:
        torch.manual_seed(config.seed + context.rank)  # the ranks' own dropout masks

    # ---- losses, optimiser, schedule ------------------------------------------------------------
    rank_criterion = ListwiseDistillationLoss(temperature=config.tau, gold_mix=config.gold_mix)
    token_criterion = SentenceContrastLoss(pair_weight=config.pair_weight, margin=config.pair_margin)
    optimizer = build_optimizer(model, config.lr, config.head_lr, config.weight_decay)
    total_steps, warmup_steps = schedule_steps(
        len(data.train_groups) // context.world_size,
        config.queries_per_step,
        config.epochs,
        config.max_steps,
        config.warmup,
    )
    scheduler = warmup_linear_decay(optimizer, warmup_steps, total_steps)

    # ---- resume -----------------------------------------------------------------------------------
    checkpoint_path = config.out / "checkpoint.pt"
    state = TrainState()
    if checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, model, optimizer, scheduler, rng, device, settings)
        if context.rank:  # the checkpoint holds rank 0's sampling state
            rng.seed(f"{config.seed}:{context.rank}:{state.step}")
        log.info("resumed at epoch %d, step %d", state.epoch, state.step)

    # ---- train --------------------------------------------------------------------------------------
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda"
    )
    done = lambda: config.max_steps and state.step >= config.max_steps  # noqa: E731
    for epoch in range(state.epoch, config.epochs):
        model.train()
        order = list(range(len(data.train_groups)))
        random.Random(config.seed + epoch).shuffle(order)
        order = rank_share(order, context)
        t0 = time.time()
        for first in range(0, len(order), config.queries_per_step):
            if done():
                break
            groups = [data.train_groups[i] for i in order[first : first + config.queries_per_step]]
            size = min(config.group_size, min(len(g.candidates) for g in groups))
            chosen = [sample_group(g, size, rng, config.teacher_top) for g in groups]
            batch = collate_groups(groups, chosen, data.passage, template, config.max_length, pad_id)
            batches = [to_device(batch, device)]
            if data.spliced and config.spliced_per_step:
                picks = [rng.choice(data.spliced) for _ in range(config.spliced_per_step)]
                batches.append(
                    to_device(collate_examples(picks, template, config.max_length, pad_id), device)
                )
            with autocast:  # one forward call for the step's batches (DDP's unit)
                outputs = step_model(*batches)
            scores = outputs[0]["rank"].float().view(len(groups), size)
            rank_loss = rank_criterion(scores, batches[0]["teacher"], batches[0]["gold"])
            token_loss = sum(
                token_criterion(out["token"], b["sentence_ids"], b["sentence_labels"], b["passage_weight"])
                for out, b in zip(outputs, batches)
            )
            loss = rank_loss + config.token_weight * token_loss
            list_loss = torch.zeros((), device=device)
            if config.list_weight:
                vectors = outputs[0]["hidden"][:, 0].float().view(len(groups), size, -1)
                list_loss = joint_list_loss(
                    model.heads["listwise"],
                    vectors,
                    scores,
                    batches[0]["teacher"],
                    batches[0]["gold"],
                    rank_criterion,
                )
                loss = loss + config.list_weight * list_loss
            optimizer.zero_grad(set_to_none=True)
            if not context.all_finite(loss):
                state.skipped += 1
                log.warning(
                    "step %d: non-finite loss (rank %s, token %s, list %s), batch skipped",
                    state.step,
                    rank_loss,
                    token_loss,
                    list_loss,
                )
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            state.step += 1
            if state.step % config.log_every == 0 or state.step == 1:
                log.info(
                    "epoch %d step %d/%d rank %.4f token %.4f list %.4f lr %.2e (%.1f pairs/s)",
                    epoch,
                    state.step,
                    total_steps,
                    rank_loss.item(),
                    token_loss.item(),
                    list_loss.item(),
                    scheduler.get_last_lr()[0],
                    (first + config.queries_per_step) * size * context.world_size / (time.time() - t0),
                )

        # ---- validate, keep the best epoch, checkpoint (rank 0; the others wait) -----------------------
        state.epoch = epoch + 1
        if context.is_main:
            modes: dict[str, float] = {}
            with inference_pruner(model, tokenizer, device, config.eval_batch_size) as pruner:
                ndcg = validator.validate_model(pruner, data.texts).ndcg10
                if config.list_weight:  # the list modes are reported; the best epoch is the pointwise one
                    head = pruner.model.heads["listwise"]
                    modes = validate_list_modes(head, pruner, data.valid, data.texts, validator)
            state.history.append(
                {
                    "epoch": epoch,
                    "step": state.step,
                    "dl21_ndcg@10": ndcg,
                    **modes,
                    "seconds": time.time() - t0,
                    "skipped_batches": state.skipped,
                }
            )
            log.info("epoch %d: DL21 validation nDCG@10 %.4f %s", epoch, ndcg, modes)
            state.keep_if_best(model, ndcg)
            save_checkpoint(checkpoint_path, model, optimizer, scheduler, state, rng, settings)
        context.barrier()
        if done():
            break

    # ---- calibrate, choose the threshold, save (rank 0) -------------------------------------------------
    summary: dict = {}
    if context.is_main:
        if state.best_state is not None:
            model.load_state_dict(state.best_state)
        record = {"history": state.history, "best_dl21_ndcg@10": state.best_ndcg}
        summary = finalize(model, tokenizer, device, data, config, record)
    return summary


if __name__ == "__main__":
    main()
