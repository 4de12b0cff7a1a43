"""The one normalise-and-classify step every text field passes before the model sees it.

Two kinds of text break a tokenizer or fool a model, whatever entry point they come through (Python API,
CLI, HTTP server, LangChain/LlamaIndex):

* **Ill-formed UTF-16.** A JSON string may hold a lone surrogate (``"\\ud800"``); Python keeps it as a code
  point in ``str``, and the Rust tokenizer refuses the whole batch. ``repair_text`` replaces each surrogate
  code point by U+FFFD, one for one, so the repaired text has the caller's length and every character
  offset (``Span``) into it is an offset into the caller's text too. ``check_text`` applies the caller's
  policy: ``"replace"`` (repair) or ``"error"`` (a ``ValueError`` naming the field and the offset).
* **No visible character.** Text made only of whitespace, controls (Unicode category Cc), format
  characters (Cf: zero-width space, BOM, soft hyphen, word joiner, ...) and lone surrogates holds no text;
  ``is_blank`` says so, and ragprune treats such text exactly like ``""``: a blank passage gets logit
  ``-inf`` and keeps nothing, a blank title is no title, a blank query is an error.

Unicode categories come from the ``regex`` package's tables (``\\p{Cf}`` and so on).
"""

from __future__ import annotations

import re

import regex

__all__ = ["INVALID_TEXT_POLICIES", "check_text", "is_blank", "repair_text"]

INVALID_TEXT_POLICIES = ("replace", "error")
REPLACEMENT_CHARACTER = "\ufffd"

_SURROGATE = re.compile("[\ud800-\udfff]")
_VISIBLE = regex.compile(r"[^\s\p{Cc}\p{Cf}\p{Cs}\p{Z}]")


def repair_text(text: str) -> str:
    """``text`` with every lone surrogate code point replaced by U+FFFD; same length, same offsets.

    Returns ``text`` itself when it holds none (the common case costs one scan: ``str.isascii`` for ASCII
    text, a regex scan otherwise).
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def is_blank(text: str) -> bool:
    """Whether ``text`` has no visible character: only whitespace, controls, format characters
    (``\\u200b``, ``\\ufeff``, ``\\xad``, ...) and lone surrogates. ``""`` is blank."""
    return _VISIBLE.search(text) is None


def check_text(text: str, field: str, invalid_text: str = "replace") -> str:
    """The text the tokenizer can take, or an error naming ``field``.

    Args:
        text: the caller's text.
        field: how to name it in an error, e.g. ``"query 'q1'"`` or ``"passages[3].title"``.
        invalid_text: ``"replace"`` repairs lone surrogates (see ``repair_text``); ``"error"`` refuses them.

    Raises:
        TypeError: ``text`` is not a ``str``.
        ValueError: ``invalid_text`` is unknown, or is ``"error"`` and ``text`` holds a lone surrogate.
    """
    if invalid_text not in INVALID_TEXT_POLICIES:
        raise ValueError(f"invalid_text={invalid_text!r}; use one of {INVALID_TEXT_POLICIES}")
    if not isinstance(text, str):
        raise TypeError(f"{field} is a {type(text).__name__}; pass a str")
    bad = None if text.isascii() else _SURROGATE.search(text)
    if bad is None:
        return text
    if invalid_text == "error":
        raise ValueError(
            f"{field} holds a lone surrogate (U+{ord(bad.group()):04X}, ill-formed UTF-16) at character "
            f"{bad.start()}; fix the text's encoding, or pass invalid_text='replace' to read it as U+FFFD"
        )
    return repair_text(text)
