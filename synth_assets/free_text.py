"""Free text's rules, shared by the stats, the generation and the quality stage: what a word is, when a string
column is free text, and the privacy filter every generated text passes.

A word is a run of letters and digits (`\\w+`), counted in lower case: "Smith" and "SMITH" are one word. The stats
keep the words and characters enough units (rows, or subjects) hold; a generated text keeps only those, so a
word, name or number held by fewer than the rare threshold never comes out, whatever the text model learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD = re.compile(r"\w+")
# a string column is free text, unless synth.yaml says otherwise, where this share of its rows hold a value
# fewer units than the rare threshold hold (as a category it would be mostly _RARE_) ...
TEXT_AUTO_MIN_RARE_SHARE = 0.2
# ... and its values have at least this many words (separated by white space) at the median: names, titles,
# descriptions; IDs and codes (no white space) stay codes or categories
TEXT_AUTO_MIN_WORDS = 2
# ... of which at least this share are words of letters at the median: "AB1 2CD" is a postcode, not text
TEXT_AUTO_MIN_LETTER_WORDS = 0.5
LETTERS = re.compile(r"[^\W\d_]+")
MAX_KEPT_WORDS = 50_000
# with differential privacy a subject's text adds at most this many of its distinct words, and of its characters
# other than a word's (spaces, punctuation), to the counts that decide which are kept (the noise grows with the
# square root of each; fewer where the texts are short: a word and its space take about CHARACTERS_PER_WORD)
DP_WORDS_PER_SUBJECT = 16
DP_CHARACTERS_PER_SUBJECT = 8
CHARACTERS_PER_WORD = 5


def words(text: str) -> list[str]:
    """The words of a text, in lower case, in order."""
    return [w.lower() for w in WORD.findall(text)]


def reads_as_text(text: str) -> bool:
    """Whether one value looks like free text: several words, mostly of letters."""
    pieces = text.split()
    if len(pieces) < TEXT_AUTO_MIN_WORDS:
        return False
    found = WORD.findall(text)
    return sum(1 for w in found if LETTERS.fullmatch(w)) >= TEXT_AUTO_MIN_LETTER_WORDS * max(len(found), 1)


@dataclass(frozen=True)
class TextFilter:
    """What a generated text may hold: the kept words and characters, and a length; and what it may not be: a
    training text too few units hold (made of common words, it is still one subject's own text)."""

    words: frozenset[str]
    characters: frozenset[str]
    max_length: int
    rare_texts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, column, training_texts=None) -> "TextFilter":
        """From a free-text column's stats (ColumnStats), and its training texts (an iterable of str, or None):
        those the stats did not keep as common texts are rare."""
        common = {c for c in column.categories or () if isinstance(c, str)}
        rare = frozenset(t for t in training_texts or () if isinstance(t, str) and t not in common)
        return cls(frozenset(column.words or ()), frozenset(column.text_characters or ""), int(column.max_length or 0),
                   rare)

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in words(text) if w not in self.words]

    def passes(self, text: str) -> bool:
        return (len(text) <= self.max_length and all(c in self.characters for c in text)
                and not self.unknown_words(text) and text not in self.rare_texts)

    def scrub(self, text: str) -> str:
        """The text without its unknown characters and words, its white space tidied, cut to the length at a word;
        empty where that leaves a rare training text."""
        text = "".join(c for c in text if c in self.characters)
        text = WORD.sub(lambda m: m.group(0) if m.group(0).lower() in self.words else "", text)
        text = cut_at_word(re.sub(r"\s+", " ", text).strip(), self.max_length)
        return "" if text in self.rare_texts else text


def cut_at_word(text: str, length: int) -> str:
    """A text cut to `length` characters, without the piece of a word the cut would leave (a piece of a kept
    word is no kept word)."""
    if len(text) <= length:
        return text
    cut = text[:length]
    if WORD.fullmatch(text[length - 1 : length + 1] or ""):  # the cut falls inside a word
        cut = WORD.sub(lambda m: "" if m.end() == len(cut) else m.group(0), cut)
    return cut.strip()
