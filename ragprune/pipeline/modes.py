"""The ranking modes of ``process`` and FIRST's sliding windows (no heavy imports: the CLI reads them for
``--help``; the list stage and the LLM backends share the windows)."""

from __future__ import annotations

MODES = ("pointwise", "listwise", "full")
"""``pointwise``: the rank head; ``listwise``: the list-level head over sliding windows; ``full``: the
list-level head over the whole list (``ragprune.pipeline.list_stage``)."""
WINDOW = 20
"""Candidates per window in ``listwise`` mode (FIRST, Reddy et al. 2024)."""
STRIDE = 10
"""How far each window moves up the list in ``listwise`` mode."""


def sliding_windows(count: int, window: int, stride: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` windows, in processing order, that rerank ``count`` candidates.

    rank_llm's order: the first window is the last ``window`` candidates, each next one ``stride`` higher,
    the last one starts at 0 (it may be shorter); each window is ranked on the list as the previous windows
    left it, so strong candidates bubble up to the top. 45 candidates, 20/10: ``(25, 45), (15, 35), (5, 25),
    (0, 15)``. ``ValueError`` unless ``window`` >= 1 and 1 <= ``stride`` <= ``window``.
    """
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"window={window}, stride={stride}; need window >= 1 and 1 <= stride <= window")
    windows: list[tuple[int, int]] = []
    end = count
    start = max(end - window, 0)
    while end > start:
        windows.append((start, end))
        if start == 0:
            break
        end, start = end - stride, max(start - stride, 0)
    return windows
