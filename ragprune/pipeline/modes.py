"""The ranking modes of ``process`` (no heavy imports: the CLI reads them for ``--help``)."""

MODES = ("pointwise", "listwise", "full")
"""``pointwise``: the rank head; ``listwise``: the list-level head over sliding windows; ``full``: the
list-level head over the whole list (``ragprune.pipeline.list_stage``)."""
WINDOW = 20
"""Candidates per window in ``listwise`` mode (FIRST, Reddy et al. 2024)."""
STRIDE = 10
"""How far each window moves up the list in ``listwise`` mode."""
