"""Score every training and validation candidate with a trained model, as a teacher for the next round.

An ensemble of a trained student with its teacher can be a stronger teacher for the next round, and
the student's scores over the training candidates show how far it is from its teacher. This script
writes the model's rank logit for every (query, candidate) pair of ``groups``, ``valid_pruning`` and
``valid_dl21`` in a ``build_data.py`` folder; ``mix_teacher.py`` combines them with the existing
teacher. Run it where a GPU is (368k pairs: 97 s on an H200).

    python3 training/score_candidates.py --model ragprune/models/default --data .carry/train \\
        --out $OUT/student_scores.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ragprune.pipeline import RerankPruner
from ragprune.training.files import read_jsonl, write_jsonl_gz

log = logging.getLogger("score_candidates")
SPLITS = ("groups", "valid_pruning", "valid_dl21")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model folder")
    parser.add_argument("--data", type=Path, default=Path(".cache/train"), help="build_data.py output")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines (gz): qid, {pid: logit}")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    texts = {p["pid"]: p["text"] for p in read_jsonl(args.data / "pool.jsonl.gz")}
    records = [r for split in SPLITS for r in read_jsonl(args.data / f"{split}.jsonl.gz")]
    records = [r for r in records if r["candidates"]]
    pairs = sum(len(r["candidates"]) for r in records)
    log.info("%d queries, %d pairs", len(records), pairs)
    start = time.time()
    with RerankPruner.load(
        args.model, device=args.device, batch_size=args.batch_size, progress=False
    ) as pruner:
        results = pruner.process(
            [r["query"] for r in records],
            [[{"id": c["pid"], "text": texts[c["pid"]]} for c in r["candidates"]] for r in records],
            threshold=0.0,
            reorder=False,
        )
    log.info("scored in %.0f s (%.0f pairs/s)", time.time() - start, pairs / (time.time() - start))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl_gz(
        args.out,
        (
            {"qid": record["qid"], "scores": {p.document.id: round(p.logit, 4) for p in result}}
            for record, result in zip(records, results, strict=True)
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
