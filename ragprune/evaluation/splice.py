"""Spliced passages for the gold-position slice: one gold sentence among off-topic filler sentences.

A pruner whose sentence scores follow position keeps an answer sentence at the start of a passage
and drops the same sentence after a run of filler. :func:`spliced_position_examples` builds, from
the examples of one data set, passages that differ only in where the gold sentence sits:

* per example with a gold sentence, one gold sentence is drawn, then ``n`` (uniform in
  ``min_fillers..max_fillers``) filler sentences from *other* examples of the set — sentences that
  contain none of this example's reference answers and do not occur in its own contexts (WikiQA
  asks several questions about one paragraph);
* the same gold sentence and fillers (fillers in the same order) make one passage per position:
  gold ``first`` (before all fillers), ``last`` (after all), ``middle`` (after ``n // 2`` fillers;
  only when ``n >= 2``, since with one filler the middle is first or last).

Each spliced example keeps the question and answers and has one context whose only gold sentence is
the drawn one, so :func:`ragprune.evaluation.pruning.score_pruning` scores it like any other. The draw
depends only on the examples and ``seed`` (``random.Random``), so runs are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ragprune.data.pruning import PruningContext, PruningExample

__all__ = ["POSITIONS", "spliced_position_examples"]

POSITIONS = ("first", "middle", "last")


def spliced_position_examples(
    examples: Sequence[PruningExample],
    *,
    seed: int | str,
    min_fillers: int = 1,
    max_fillers: int = 10,
) -> dict[str, list[PruningExample]]:
    """Per position (``POSITIONS``), the spliced examples, in the order of ``examples``.

    Examples without a non-empty gold sentence are skipped; so is an example when the other examples
    offer no usable filler sentence, and ``n`` is capped at the number they offer. Spliced ids are
    ``"{id}/{position}"``; ``extra`` records ``fillers`` (``n``) and ``gold_position`` (its index).
    Raises ``ValueError`` for a filler range that is empty or starts below 1.
    """
    if not 1 <= min_fillers <= max_fillers:
        raise ValueError(
            f"filler range {min_fillers}..{max_fillers} is invalid; use 1 <= min_fillers <= max_fillers"
        )
    rng = random.Random(seed)
    pool = [
        (owner, sentence.strip())
        for owner, example in enumerate(examples)
        for context in example.contexts
        for sentence in context.sentences
        if sentence.strip()
    ]
    out: dict[str, list[PruningExample]] = {position: [] for position in POSITIONS}
    for index, example in enumerate(examples):
        golds = [
            context.sentences[i].strip()
            for context in example.contexts
            for i in context.gold_sentence_ids
            if context.sentences[i].strip()
        ]
        answers = [answer.strip().casefold() for answer in example.answers if answer.strip()]
        own = {sentence.strip() for context in example.contexts for sentence in context.sentences}
        fillers = [
            sentence
            for owner, sentence in pool
            if owner != index
            and sentence not in own
            and not any(answer in sentence.casefold() for answer in answers)
        ]
        if not golds or not fillers:
            continue
        gold = rng.choice(golds)
        chosen = rng.sample(fillers, min(rng.randint(min_fillers, max_fillers), len(fillers)))
        slots = {"first": 0, "last": len(chosen)}
        if len(chosen) >= 2:
            slots["middle"] = len(chosen) // 2
        for position, slot in slots.items():
            sentences = [*chosen[:slot], gold, *chosen[slot:]]
            out[position].append(
                PruningExample(
                    id=f"{example.id}/{position}",
                    source=example.source,
                    question=example.question,
                    answers=example.answers,
                    contexts=[PruningContext(title="", sentences=sentences, gold_sentence_ids=[slot])],
                    extra={"fillers": len(chosen), "gold_position": slot},
                )
            )
    return out
