"""Uniform weight average of fast students that differ only in their recovery seed (session 10, on the GPU
machine): same pruned structure and vocabulary, checked. Usage: python soup_average.py OUT MODEL [MODEL ...]
"""

import copy
import sys

import torch

from ragprune.models.registry import load_model

out, paths = sys.argv[1], sys.argv[2:]
loaded = [load_model(p) for p in paths]
vocab = loaded[0][1].get_vocab()
assert all(t.get_vocab() == vocab for _, t in loaded), "vocabularies differ"
states = [m.state_dict() for m, _ in loaded]
assert all(s.keys() == states[0].keys() and all(s[k].shape == states[0][k].shape for k in s) for s in states)
soup = copy.deepcopy(loaded[0][0]).float()
soup.load_state_dict({k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]})
soup.save_pretrained(out, loaded[0][1], dtype=torch.float16)
print("soup of", paths, "->", out)
