"""Ranked, typo-tolerant search over each topic's whole text (BM25 over word stems).

The keyword matcher in :mod:`tutor.curriculum` is precise but only sees the phrases a
curriculum author thought of. Students write "why does ice float?" or "their going to the
park", so every topic is also indexed as one document made of its name, keywords,
explanation, worked example, hints, check questions and misconceptions (name and keywords
counted three times: they are the strongest evidence). A message is scored against these
documents with Okapi BM25 over Snowball stems.

Two guards keep it from matching chatter:

- stop words (question words, pronouns, "explain", "help"...) are not evidence;
- a topic counts only if it covers most of what the message says: the matched terms must
  carry at least :data:`MIN_COVERAGE` of the message's total term weight (IDF), where a
  word the curriculum never uses weighs as much as its rarest word, and at least
  :data:`MIN_EVIDENCE` times that rarest weight in all (a word most topics use, like "time", is not enough alone). "What's your favourite
  football team" mentions football (a worked example kicks one) but is mostly about other
  things, so it matches nothing.

Typos: a message word of five letters or more that the curriculum never uses is replaced
by a curriculum word one edit away (insertion, deletion, substitution or swap of
neighbours), found through an index of one-letter deletions (the symmetric-delete idea), so
"photosynthsis" and "evaparation" still find their topics.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import snowballstemmer

K1 = 1.2
B = 0.75
MIN_COVERAGE = 0.5
MIN_EVIDENCE = 0.35  # of the rarest word's IDF, summed over the matched terms: with 30 topics, a word in
# at most 6 of them, or two commoner ones
STRONG_FIELD_REPEAT = 3  # name and keywords count this many times in a topic's document
MIN_TYPO_LENGTH = 5

_WORD_RE = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")

_STOP_TEXT = """
    a about above after again all also am an and any are as ask asked at be been being before but by can cant
    could did didn't do does doesn't doing don't done each else even ever every explain explained for from get
    gets getting give go going got had has have having he help her here hers him his how i i'd i'll i'm i've if
    in into is isn't it it's its just know let let's like me mean means mine more most much my need no not now
    of off on once one only or other our out over please question questions really say see she should so some
    someone something such tell than thank thanks that that's the them then these they thing things this those
    though through to understand up us use used using very want was way we well were what what's when where
    which while who whom why will with would yes yet you yours
"""
# Not stop words on purpose: their, there, they're, your, you're, were, where, its, it's: English
# questions about homophones, apostrophes and agreement are made of them.
STOP_WORDS = frozenset(_STOP_TEXT.split()) - {"your", "were", "where", "there", "its", "it's"}

_stemmer = snowballstemmer.stemmer("english")


def words(text: str) -> list[str]:
    """Lower-case words with inner apostrophes kept ("they're"); digits and symbols dropped."""
    return _WORD_RE.findall(text.lower().replace("’", "'").replace("‘", "'"))


def stem(word: str) -> str:
    return _stemmer.stemWord(word)


@dataclass(frozen=True)
class Document:
    key: tuple[str, str]  # (subject id, topic id)
    strong: str  # name and keywords
    body: str  # everything else


class TopicSearch:
    """BM25 over topic documents, with typo correction of message words."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self.keys: list[tuple[str, str]] = []
        self.term_counts: list[Counter[str]] = []
        vocabulary: set[str] = set()
        for doc in documents:
            strong, body = words(doc.strong), words(doc.body)
            vocabulary.update(strong, body)
            terms = Counter(stem(w) for w in body if w not in STOP_WORDS)
            for _ in range(STRONG_FIELD_REPEAT):
                terms.update(stem(w) for w in strong if w not in STOP_WORDS)
            self.keys.append(doc.key)
            self.term_counts.append(terms)
        self.lengths = [sum(c.values()) for c in self.term_counts]
        self.average_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0
        n = len(self.keys)
        frequency: Counter[str] = Counter()
        for counts in self.term_counts:
            frequency.update(counts.keys())
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self.unknown_idf = math.log(1 + (n + 0.5) / 0.5)  # a word no topic uses: the rarest there is
        self.vocabulary = frozenset(vocabulary)
        self._deletes: dict[str, set[str]] = {}
        for word in self.vocabulary:
            if len(word) >= MIN_TYPO_LENGTH - 1:
                for variant in _deletions(word) | {word}:
                    self._deletes.setdefault(variant, set()).add(word)

    def correct(self, word: str) -> str:
        """``word``, or the curriculum word one edit away when ``word`` is unknown."""
        if word in self.vocabulary or len(word) < MIN_TYPO_LENGTH or word in STOP_WORDS:
            return word
        candidates: set[str] = set()
        for variant in _deletions(word) | {word}:
            candidates |= self._deletes.get(variant, set())
        candidates = {c for c in candidates if _one_edit(word, c)}
        if not candidates:
            return word
        # The most widespread (lowest IDF) of the nearest words, then alphabetical: deterministic.
        return min(candidates, key=lambda c: (self.idf.get(stem(c), self.unknown_idf), c))

    def scores(self, text: str, allowed: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], float]:
        """BM25 score of every topic that covers most of the message (others are left out)."""
        query = {stem(self.correct(w)) for w in words(text) if w not in STOP_WORDS}
        query.discard("")
        if not query:
            return {}
        weight = {t: self.idf.get(t, self.unknown_idf) for t in query}
        total = sum(weight.values())
        out: dict[tuple[str, str], float] = {}
        for key, counts, length in zip(self.keys, self.term_counts, self.lengths, strict=True):
            if allowed is not None and key not in allowed:
                continue
            matched = [t for t in query if t in counts]
            evidence = sum(weight[t] for t in matched)
            if evidence < MIN_EVIDENCE * self.unknown_idf or evidence < MIN_COVERAGE * total:
                continue
            norm = K1 * (1 - B + B * length / self.average_length)
            out[key] = sum(weight[t] * counts[t] * (K1 + 1) / (counts[t] + norm) for t in matched)
        return out


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """True if a and b differ by one insertion, deletion, substitution or adjacent swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))
