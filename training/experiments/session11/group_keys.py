"""Hash of the recovery groups' keys per source (``CalibrationGroup.key``), to check that two machines build
the same groups from the same data (session 11: identical on this AMD machine and the GPU machine's Intel
one, NumPy 2.5.2, once BM25 broke ties in corpus order; group_keys.txt).

    RAGPRUNE_DATA=<data folder> python training/experiments/session11/group_keys.py
"""

import hashlib

from ragprune.weight_pruning.calibration import load_source

SOURCES = ["msmarco-dev", "nq-train", "wikiqa-train", "scifact-train", "hotpotqa-train", "msmarco-triples"]
groups = []
for source in SOURCES:
    built = load_source(source, 16, 0)
    groups += built
    print(source, len(built), hashlib.sha1("".join(g.key() for g in built).encode()).hexdigest()[:12])
print("all", len(groups), hashlib.sha1("".join(g.key() for g in groups).encode()).hexdigest())
