"""The chunker cuts any text into pieces a TTS API accepts, at sentence ends,
never inside a word."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tts_pipeline.chunking import MAX_CHUNK_CHARS, chunk_text, sentences


def expected_tokens(text: str, max_chars: int) -> list[str]:
    """The text's words, each word longer than a chunk cut into slices of `max_chars`."""
    tokens: list[str] = []
    for word in text.split():
        tokens.extend(
            [word]
            if len(word) <= max_chars
            else [word[i : i + max_chars] for i in range(0, len(word), max_chars)]
        )
    return tokens


words = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30
).filter(lambda w: not any(c.isspace() for c in w))
separators = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", " \u00a0", "\u2028"])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=600), max_chars=st.integers(min_value=1, max_value=80))
def test_any_text_keeps_every_word_in_order_and_every_chunk_fits(text: str, max_chars: int) -> None:
    chunks = chunk_text(text, max_chars)
    assert all(0 < len(chunk) <= max_chars for chunk in chunks)
    assert all(chunk == chunk.strip() and "  " not in chunk for chunk in chunks)
    assert [token for chunk in chunks for token in chunk.split(" ")] == expected_tokens(
        text, max_chars
    )


@settings(max_examples=200, deadline=None)
@given(
    sentence_words=st.lists(st.lists(words, min_size=1, max_size=8), min_size=1, max_size=25),
    ends=st.lists(
        st.sampled_from([".", "!", "?", "…", '."', "?)", "!»"]), min_size=25, max_size=25
    ),
    separator=separators,
)
def test_sentences_that_fit_are_never_cut(
    sentence_words: list[list[str]], ends: list[str], separator: str
) -> None:
    # Only the ends end sentences: strip sentence punctuation from the words, and end each
    # sentence's last word with "q" so that it is no abbreviation ("St.", "Dr.").
    cleaned = [[w.rstrip(".!?…。！？\"')]}»”’") or "x" for w in ws] for ws in sentence_words]
    cleaned = [[*ws[:-1], ws[-1] + "q"] for ws in cleaned]
    made = [" ".join(ws) + end for ws, end in zip(cleaned, ends, strict=False)]
    text = separator.join(made)
    max_chars = max(len(s) for s in made) + 10
    chunks = chunk_text(text, max_chars)
    assert " ".join(chunks) == " ".join(made)
    # Every chunk is whole sentences: its end is a sentence end.
    boundaries = set()
    position = 0
    for sentence in made:
        position += len(sentence)
        boundaries.add(position)
        position += 1
    position = 0
    for chunk in chunks:
        position += len(chunk)
        assert position in boundaries, (chunk, made)
        position += 1
    # Greedy: the next chunk's first sentence would not have fitted in this one.
    for chunk, following in itertools.pairwise(chunks):
        assert len(chunk) + 1 + len(sentences(following)[0]) > max_chars


@settings(max_examples=25, deadline=None)
@given(
    word_count=st.integers(min_value=1, max_value=3000),
    word_length=st.integers(min_value=1, max_value=12),
)
def test_text_without_punctuation_is_cut_between_words(word_count: int, word_length: int) -> None:
    text = " ".join("w" * word_length for _ in range(word_count))
    chunks = chunk_text(text)
    assert all(len(c) <= MAX_CHUNK_CHARS for c in chunks)
    assert all(
        set(token) == {"w"} and len(token) == word_length for c in chunks for token in c.split(" ")
    )
    assert " ".join(chunks) == text


@pytest.mark.parametrize("length", [4000, 4001, 12_345])
def test_a_single_word_longer_than_a_chunk_is_the_one_thing_cut(length: int) -> None:
    word = "".join(chr(ord("a") + i % 26) for i in range(length))
    chunks = chunk_text(f"Before. {word} after.")
    assert (
        "".join(c for c in chunks if c not in ("Before.", "after.")).replace(" ", "").find(word)
        >= 0
    )
    assert all(len(c) <= MAX_CHUNK_CHARS for c in chunks)
    assert [t for c in chunks for t in c.split(" ")] == expected_tokens(
        f"Before. {word} after.", MAX_CHUNK_CHARS
    )


def test_a_long_story_fills_chunks_up_to_4000_characters_at_sentence_ends() -> None:
    sentence = "The keeper lit the lamp again, and the ships came home. "
    text = sentence * 300  # 17,100 characters
    chunks = chunk_text(text)
    assert len(chunks) == 5
    assert all(len(c) <= 4000 and c.endswith("home.") for c in chunks)
    assert all(len(c) > 4000 - len(sentence) for c in chunks[:-1])


def test_abbreviations_do_not_end_a_sentence() -> None:
    assert sentences("Dr. Watson met Mr. Holmes. Then e.g. tea!") == [
        "Dr. Watson met Mr. Holmes.",
        "Then e.g. tea!",
    ]


def test_empty_and_blank_text_has_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\t ") == []


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        chunk_text("text", 0)
