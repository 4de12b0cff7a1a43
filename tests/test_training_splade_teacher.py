"""training/splade_teacher.py on a toy data folder with a tiny random BERT masked LM (CPU, no shared data)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from tiny_models import save_tiny_masked_lm

_SCRIPT = Path(__file__).resolve().parents[1] / "training" / "splade_teacher.py"
MAX_LENGTH = 64

PASSAGES = {
    "p0": "The capital of France is Paris.",
    "p1": "Paris hosts the Louvre, the most visited museum in the world, and the Eiffel Tower. " * 4,
    "p2": "Bananas are rich in potassium.",
    "p3": "A sparse lexical model expands each text into weighted vocabulary terms.",
    "p4": "Rivers",
    "p5": "The French government sits in Paris, on the banks of the Seine river.",
}
QUERIES = {"train:1": "what is the capital of france", "prune:1": "potassium in bananas"}
DL21 = {"101": "where is the louvre", "102": "sparse retrieval models"}


@pytest.fixture(scope="module")
def st():
    spec = importlib.util.spec_from_file_location("splade_teacher_under_test", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory) -> Path:
    return save_tiny_masked_lm(tmp_path_factory.mktemp("splade"))


def _dense_splade(folder: Path, texts: list[str]):
    """Reference: the SPLADE vector of each text from the model's full logits, one text at a time."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForMaskedLM.from_pretrained(folder)
    with torch.inference_mode():
        return [
            torch.log1p(
                torch.relu(
                    model.eval()(
                        **tokenizer(text, max_length=MAX_LENGTH, truncation=True, return_tensors="pt")
                    ).logits[0]
                )
            )
            .amax(dim=0)
            .double()
            for text in texts
        ]


def _write(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)


def _read(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _record(qid: str, query: str, values: dict[str, float], docnos: bool = False) -> dict:
    """Every stored feature ranks the candidates by *values*, reversed: only SPLADE can get them right."""
    candidates = []
    for pid, value in values.items():
        candidate = {"pid": pid, "bm25": -value, "minilm": -value, "mpnet": -value, "teacher": -value}
        candidate |= {"label": None} | ({"docno": f"d{pid}"} if docnos else {})
        candidates.append(candidate)
    return {"qid": qid, "query": query, "source": qid.split(":")[0], "candidates": candidates, "gold": {}}


def test_splade_scores_match_dense_computation_and_dl21_picks_the_best_ensemble(st, tiny_mlm, tmp_path):
    pids = list(PASSAGES)
    queries = {**QUERIES, **{f"dl21:{t}": q for t, q in DL21.items()}}
    passage_vecs = dict(zip(pids, _dense_splade(tiny_mlm, list(PASSAGES.values())), strict=True))
    query_vecs = dict(zip(queries, _dense_splade(tiny_mlm, list(queries.values())), strict=True))
    expected = {qid: {pid: float(passage_vecs[pid] @ query_vecs[qid]) for pid in pids} for qid in queries}

    data = tmp_path / "data"
    data.mkdir()
    _write(
        data / "pool.jsonl.gz",
        [{"pid": p, "text": t, "sentences": [], "source": "toy"} for p, t in PASSAGES.items()],
    )
    _write(data / "sentences.jsonl.gz", [])
    _write(data / "groups.jsonl.gz", [_record("train:1", QUERIES["train:1"], expected["train:1"])])
    _write(data / "valid_pruning.jsonl.gz", [_record("prune:1", QUERIES["prune:1"], expected["prune:1"])])
    _write(
        data / "valid_dl21.jsonl.gz",
        [_record(f"dl21:{t}", q, expected[f"dl21:{t}"], docnos=True) for t, q in DL21.items()],
    )
    # Grades follow the true SPLADE order; a relevant passage outside the run caps every nDCG below 1.
    qrels = []
    for topic in DL21:
        ranked = sorted(pids, key=lambda p: -expected[f"dl21:{topic}"][p])
        qrels += [f"{topic} 0 d{pid} {grade}" for pid, grade in zip(ranked, (3, 2, 1, 0), strict=False)]
        qrels.append(f"{topic} 0 unretrieved 2")
    (tmp_path / "qrels.txt").write_text("\n".join(qrels) + "\n")

    out = tmp_path / "out"
    argv = [
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        str(tiny_mlm),
        "--qrels",
        str(tmp_path / "qrels.txt"),
    ]
    chosen = st.main(argv + ["--max-length", str(MAX_LENGTH), "--batch-size", "4"])

    choice = json.loads((out / "teacher_choice.json").read_text())
    assert chosen == choice["chosen"]["name"] == "splade"
    assert set(choice["dl21_ndcg10"]) == set(st.SPECS)
    assert 0.5 < choice["dl21_ndcg10"]["splade"] < 1.0
    assert choice["dl21_ndcg10"]["splade"] > max(v for k, v in choice["dl21_ndcg10"].items() if k != "splade")
    assert choice["encoded_texts"] == {"passages": 6, "queries": 4}
    for name in st.SCORED_FILES:
        for record in _read(out / name):
            splade = [c["splade"] for c in record["candidates"]]
            truth = [expected[record["qid"]][c["pid"]] for c in record["candidates"]]
            assert splade == pytest.approx(truth, rel=1e-5, abs=1e-3)
            assert [c["teacher"] for c in record["candidates"]] == splade
    assert _read(out / "pool.jsonl.gz") == _read(data / "pool.jsonl.gz")


def test_choose_prefers_fewer_parts_on_a_tie_and_bad_inputs_fail_clearly(st, tmp_path):
    means = {name: 0.5 for name in st.SPECS} | {"z(mpnet+0.5splade+0.1bm25)": 0.61, "mpnet": 0.61004}
    assert st.choose(means) == "mpnet"
    record = _record("dl21:7", "query", {"p0": 1.0, "p1": 0.0}, docnos=True)
    with pytest.raises(KeyError, match="DL21 query 7 has no qrels"):
        st.dl21_table([record], {"8": {"dp0": 1}})
    with pytest.raises(FileNotFoundError, match="no config.json"):
        st.load_splade(tmp_path)
