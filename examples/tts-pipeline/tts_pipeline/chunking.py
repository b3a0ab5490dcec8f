"""Cutting a story into pieces a TTS API accepts: at most `max_chars` characters each (OpenAI's
speech endpoint takes 4,096), cut at sentence ends, never inside a word.

Whitespace is normalized (runs of spaces and newlines become one space): speech does not hear it,
and it keeps the promise simple: `" ".join(chunks)` is the text's words in order. A sentence
longer than a chunk is cut between words; a word longer than a chunk (a URL, a hash) is the one
thing cut inside, because no other cut exists. Pure functions only: no I/O here.
"""

from __future__ import annotations

MAX_CHUNK_CHARS = 4000

_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")  # CJK full stops end sentences too
_CLOSERS = "\"'”’)]}»"  # a sentence may end inside quotes or brackets
# A full stop after these is not the end of a sentence: cutting there would break the prosody.
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "no."}
)


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """The text in chunks of at most `max_chars` characters, each made of whole sentences when
    the sentences fit, packed greedily (each chunk is as full as whole sentences allow)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    pieces: list[str] = []
    for sentence in sentences(text):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
        else:
            pieces.extend(_pack(_words_that_fit(sentence.split(" "), max_chars), max_chars))
    return _pack(pieces, max_chars)


def sentences(text: str) -> list[str]:
    """The text's sentences, whitespace normalized; text without punctuation is one sentence."""
    found: list[str] = []
    current: list[str] = []
    for word in text.split():
        current.append(word)
        if _ends_sentence(word):
            found.append(" ".join(current))
            current = []
    if current:
        found.append(" ".join(current))
    return found


def _ends_sentence(word: str) -> bool:
    core = word.rstrip(_CLOSERS)
    return core.endswith(_SENTENCE_END) and core.lower() not in _ABBREVIATIONS


def _words_that_fit(words: list[str], max_chars: int) -> list[str]:
    """The words, with any word longer than `max_chars` cut into slices that fit."""
    out: list[str] = []
    for word in words:
        if len(word) <= max_chars:
            out.append(word)
        else:
            out.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return out


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Join consecutive pieces with a space while the result fits in `max_chars`."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if not current:
            current = piece
        elif len(current) + 1 + len(piece) <= max_chars:
            current = f"{current} {piece}"
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks
