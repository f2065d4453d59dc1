"""Classify a Chinese report text into the taxonomy (v2.1) the way a dispatcher (派单员) reads it.

The engine is a weighted lexicon matcher over segmented text, loaded once at import from
project data (pure logic, no services):

* ``data/classify_lexicon.csv`` -- synonym groups (``code,weight,terms``); a term ``A+B``
  scores when all its parts occur; code ``-`` marks neutral terms that only take their span.
* ``data/classify_rules.json`` -- threshold, negation and hypothetical cues (一旦/万一/差点),
  damage cues, clause breaks, part weights, request cues, place suffixes, request-type cues.
* ``data/divisions/NN.csv`` -- division names: words of the segmenter and never evidence.

Steps: normalize (NFKC: full-width -> half-width; lower case; traditional ->
simplified with OpenCC's t2s tables); split into parts -- a letter's ``title``, the
sentences with an explicit ``request`` (恳请/希望/要求/请…) and the ``body`` -- weighted
2.5 / 2 / 1 (``part_weights``: the title and the request decide a multi-issue
letter, ../shared/reference/README.md); segment each clause with jieba's dictionary
and algorithm (rjieba, its Rust port; user dictionary: the lexicon terms and the division
names, nothing downloaded; only for a clause with a term that needs the word boundaries);
find every term of a clause in one pass of an Aho-Corasick automaton (pyahocorasick) and
keep those aligned with words (a
one-character term must be a word: 管 of 管理, 断 of 不断 do not count; a longer term must
start or end one), skip terms inside place names (division names, 2-4 characters
before 小区/社区/街道: 梧桐 of 梧桐里小区), drop negated and hypothetical terms ("路灯没坏",
"一旦发生火灾"), halve a term followed by a place word (公交站旁边), fire combinations, add a
bonus to part categories (P...) on a damage cue, then rank: best score, event before
part, the more urgent priority.
``confidence = s1 / (s1 + s2) * (1 - exp(-s1 / scale))`` with s1, s2 the two best scores;
below the threshold, and for praise with nothing asked, the answer is ``X9999`` (人工分拨,
source ``fallback``). The result also carries the request type (``request_types.csv``), the
taxonomy version, the classifier (``rules-v2``) and the part that decided. Evidence terms are
given in normalized form (as found in ``normalize(text)``).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import ahocorasick
import opencc

from pipelines import taxonomy
from pipelines.errors import GovstreamError

DATA_DIR = Path(__file__).parent / "data"
LEXICON_PATH = DATA_DIR / "classify_lexicon.csv"
RULES_PATH = DATA_DIR / "classify_rules.json"
NEUTRAL = "-"
ASPECT_PARTICLES = "了着过"  # 塌了 has the head 塌

DIVISIONS_DIR = DATA_DIR / "divisions"
Source = Literal["hint", "text", "fallback"]
Part = Literal["title", "request", "body", ""]
_T2S = opencc.OpenCC("t2s")


def _t2s(text: str) -> str:
    """Traditional -> simplified Chinese with OpenCC's t2s tables (characters and phrases)."""
    return str(_T2S.convert(text)) if text else text


class LexiconError(GovstreamError):
    """The classifier's lexicon or rules file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Classification:
    """The category of a report, with the fields the router needs copied from the taxonomy."""

    code: str
    major: str
    minor: str
    confidence: float
    priority: str
    sla_hours: float
    department: str
    level: str
    evidence: tuple[str, ...]
    source: Source
    request_type: str = taxonomy.DEFAULT_REQUEST_TYPE
    taxonomy_version: str = taxonomy.VERSION
    classifier: str = "rules-v2"
    part: Part = ""  # which part of the text decided: title | request | body ("" without text)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = list(self.evidence)
        return data


@dataclass(frozen=True, slots=True)
class Rules:
    threshold: float
    confidence_scale: float
    part_damage_bonus: float
    damage_cues: tuple[str, ...]
    negation_window: int
    cue_pattern: re.Pattern[str]  # groups: mask | pre | post
    break_pattern: re.Pattern[str]
    bigram_weight: float
    location_words: tuple[str, ...]
    location_span: int
    location_factor: float
    part_weights: dict[str, float]
    request_cues: tuple[str, ...]
    request_types: dict[str, tuple[str, ...]]
    place_pattern: re.Pattern[str]
    identity_pattern: re.Pattern[str]  # 我是 / 作为 …: the writer's identity follows
    identity_factor: float
    homophone_factor: float
    surface_parts: frozenset[str]  # parts that are a surface: an event word's cue is the event's


@dataclass(frozen=True, slots=True)
class Lexicon:
    terms: dict[str, tuple[tuple[str, float], ...]]  # term -> ((code, weight), ...)
    combos: tuple[tuple[tuple[str, ...], str, float], ...]  # (parts, code, weight)
    combos_by_atom: dict[str, tuple[int, ...]]  # combo part -> indexes into combos
    atoms_in: dict[str, tuple[str, ...]]  # term -> combo parts it contains
    bigrams: dict[str, tuple[tuple[str, float], ...]]
    part_codes: frozenset[str]
    automaton: Any  # ahocorasick.Automaton: term -> its length (every occurrence in one pass)


# --- loading -----------------------------------------------------------------------------


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def load_rules(path: Path = RULES_PATH) -> Rules:
    """Read ``classify_rules.json``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        cues = (
            f"(?P<mask>{_alternation(raw['negation_masks'])})"
            f"|(?P<pre>{_alternation(raw['negation_pre'])})"
            f"|(?P<post>{_alternation(raw['negation_post'])})"
        )
        breaks = rf"[\s,.!?;:~…，。！？；：、]+|{_alternation(raw['clause_breaks'])}"
        return Rules(
            threshold=float(raw["threshold"]),
            confidence_scale=float(raw["confidence_scale"]),
            part_damage_bonus=float(raw["part_damage_bonus"]),
            damage_cues=tuple(raw["damage_cues"]),
            negation_window=int(raw["negation_window"]),
            cue_pattern=re.compile(cues),
            break_pattern=re.compile(breaks),
            bigram_weight=float(raw["bigram_weight"]),
            location_words=tuple(raw["location_words"]),
            location_span=max(len(w) for w in raw["location_words"]),
            location_factor=float(raw["location_factor"]),
            part_weights={k: float(v) for k, v in raw["part_weights"].items()},
            request_cues=tuple(raw["request_cues"]),
            request_types={
                k: tuple(v) for k, v in raw["request_types"].items() if not k.startswith("_")
            },
            # an invented or unknown place: 2-4 characters before 小区/社区/街道/… (梧桐里小区)
            place_pattern=re.compile(
                rf"[\u4e00-\u9fff]{{2,4}}?(?=(?:{_alternation(raw['place_suffixes'])}))"
            ),
            identity_pattern=re.compile(_alternation(raw["identity_cues"])),
            identity_factor=float(raw["identity_factor"]),
            homophone_factor=float(raw["homophone_factor"]),
            surface_parts=frozenset(raw["surface_parts"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LexiconError(f"cannot load classifier rules {path}: {exc}") from exc


def _read_lexicon_rows(path: Path) -> list[tuple[str, float, list[str]]]:
    rows: list[tuple[str, float, list[str]]] = []
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.reader(fh), start=1):
                if not row or row[0].startswith("#") or (n == 1 and row[0] == "code"):
                    continue
                if len(row) != 3:
                    raise LexiconError(f"{path}:{n}: expected code,weight,terms")
                code, weight, terms = row
                if code != NEUTRAL and not taxonomy.is_valid(code):
                    raise LexiconError(f"{path}:{n}: unknown code {code!r}")
                parts = [t.strip() for t in terms.split("|") if t.strip()]
                rows.append((code, float(weight), parts))
    except OSError as exc:
        raise LexiconError(f"cannot read lexicon {path}: {exc}") from exc
    except ValueError as exc:
        raise LexiconError(f"{path}: {exc}") from exc
    return rows


def _normalize_term(term: str) -> str:
    return _t2s(unicodedata.normalize("NFKC", term).lower())


def load_lexicon(rules: Rules, path: Path = LEXICON_PATH) -> Lexicon:
    """Read ``classify_lexicon.csv`` into lookup tables."""
    singles: dict[str, dict[str, float]] = {}
    combo_list: list[tuple[tuple[str, ...], str, float]] = []
    for code, weight, terms in _read_lexicon_rows(path):
        for term in terms:
            parts = tuple(_normalize_term(p) for p in term.split("+") if p)
            if len(parts) > 1:
                combo_list.append((parts, code, weight))
                for part in parts:
                    singles.setdefault(part, {})
                continue
            codes = singles.setdefault(parts[0], {})
            if code != NEUTRAL:
                codes[code] = max(weight, codes.get(code, 0.0))
    terms_map = {t: tuple(sorted(c.items())) for t, c in singles.items()}
    by_atom: dict[str, list[int]] = {}
    for idx, (parts, _code, _weight) in enumerate(combo_list):
        for part in parts:
            by_atom.setdefault(part, []).append(idx)
    atoms_in: dict[str, tuple[str, ...]] = {}
    for term in terms_map:
        # Chinese compounds are head-final: 垃圾桶 is a 桶 (counts for 桶+满), not a 垃圾
        head = term.rstrip(ASPECT_PARTICLES)
        inside = tuple(a for a in by_atom if term.endswith(a) or head.endswith(a))
        if inside:
            atoms_in[term] = inside
    part_codes = frozenset(c.code for c in taxonomy.all() if c.kind == "part")
    automaton = ahocorasick.Automaton()
    for term in terms_map:
        automaton.add_word(term, len(term))
    automaton.make_automaton()
    return Lexicon(
        terms=terms_map,
        combos=tuple(combo_list),
        combos_by_atom={a: tuple(ix) for a, ix in by_atom.items()},
        atoms_in=atoms_in,
        bigrams=_bigram_index(terms_map),
        part_codes=part_codes,
        automaton=automaton,
    )


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def _bigram_index(terms: dict[str, tuple[tuple[str, float], ...]]) -> dict[str, Any]:
    """Bigrams of terms of 3+ CJK characters that are not terms themselves (typo back-off).

    A bigram's weight for a code is the term's weight over the number of codes sharing the
    bigram; bigrams shared by more than two codes are too common to tell anything.
    """
    acc: dict[str, dict[str, float]] = {}
    for term, codes in terms.items():
        if len(term) < 3 or not all(_is_cjk(ch) for ch in term):
            continue
        for i in range(len(term) - 1):
            gram = term[i : i + 2]
            if gram in terms:
                continue
            for code, weight in codes:
                slot = acc.setdefault(gram, {})
                slot[code] = max(weight / 3.0, slot.get(code, 0.0))
    return {
        g: tuple((c, w / len(cs)) for c, w in sorted(cs.items()))
        for g, cs in acc.items()
        if len(cs) <= 2
    }


RULES = load_rules()
LEXICON = load_lexicon(RULES)


def _finder(words: Iterable[str]) -> Callable[[str], bool]:
    """Whether a text contains one of ``words``: the answer of ``any(w in text for w in
    words)``, by one compiled alternation."""
    words = tuple(words)
    if not words:
        return lambda _text: False
    search = re.compile(_alternation(words)).search
    return lambda text: search(text) is not None


# the cue lists of the rules, compiled once
_HAS_DAMAGE_CUE = _finder(RULES.damage_cues)
_HAS_REQUEST_CUE = _finder(RULES.request_cues)
_HAS_TYPE_CUE = {key: _finder(cues) for key, cues in RULES.request_types.items() if key != "order"}
_LOCATION_WORDS = tuple(RULES.location_words)


# --- the engine --------------------------------------------------------------------------


def normalize(text: str) -> str:
    """NFKC (full-width -> half-width), lower case, traditional -> simplified characters
    (OpenCC's ``t2s`` conversion: its complete character and phrase tables)."""
    return _t2s(unicodedata.normalize("NFKC", text).lower())


def _clauses(text: str) -> list[str]:
    return [c for c in RULES.break_pattern.split(text) if c]


# --- segmentation and places -------------------------------------------------------------

# 朝阳社区居委会 -> 朝阳社区, on every line of a text of names
_SUFFIXES = re.compile(r"(居民委员会|居委会|民委员会|委员会|委会)$", re.MULTILINE)
_SEG_LOCK = threading.Lock()
_SEGMENTER: Any = None
_PLACES: frozenset[str] = frozenset()
_PLACE_HEADS: frozenset[str] = frozenset()  # first two characters of every place name


def place_names(directory: Path = DIVISIONS_DIR) -> frozenset[str]:
    """Division names of the shipped data (``data/divisions/NN.csv``), full and without the
    居委会/委员会 ending (朝阳社区, 长兴村, 文艺路街道), of three characters or more: places,
    never evidence (a bare 草坪 is grass, 草坪村 a village). Normalized as the texts are, in
    one call for all of them (~98,000 names; one OpenCC call per name took a second)."""
    names: list[str] = []
    for path in sorted(directory.glob("[0-9][0-9].csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = csv.reader(fh)
            column = next(rows).index("name")
            names += [row[column] for row in rows]
    full = "\n".join(name for name in names if "\n" not in name)
    forms = set(full.split("\n")) | set(_SUFFIXES.sub("", full).split("\n"))
    normalized = normalize("\n".join(form for form in forms if len(form) >= 3)).split("\n")
    return frozenset(form for form in normalized if len(form) >= 3)


def user_words() -> list[tuple[str, int, str]]:
    """The segmenter's user dictionary ``(word, frequency, tag)``: every division name of the
    shipped data (tagged ``ns``; 朝阳社区 is one word) and every lexicon term of two CJK
    characters or more (so 消防栓, 断头路 are one word). Nothing is downloaded."""
    words = [(name, 5, "ns") for name in place_names()]
    words += [
        (term, 2000, "n")
        for term in LEXICON.terms
        if len(term) >= 2 and all(_is_cjk(ch) for ch in term)
    ]
    return words


def segmenter() -> Any:
    """The word segmenter: rjieba's default tokenizer (jieba-rs, the Rust port of jieba:
    jieba's own dictionary and algorithm, built in) with :func:`user_words` added, built once
    on first use (thread-safe; ~1 s, most of it reading the division names; jieba's Python
    tokenizer took 3.4 s for the same dictionary).

    Its words are jieba's ``Tokenizer.lcut(text, HMM=False)`` with the same user words:
    ``tests/unit/test_classify.py`` checks that against jieba on the labelled texts and on
    generated ones."""
    global _SEGMENTER, _PLACES, _PLACE_HEADS
    if _SEGMENTER is None:
        with _SEG_LOCK:
            if _SEGMENTER is None:
                import rjieba  # import here: only the text path needs it

                # rjieba builds a tokenizer with jieba's dictionary when it is imported; its
                # module functions (add_word, cut, tokenize) are that tokenizer's, so it is
                # used rather than a second one (0.2 s each; nothing else here uses rjieba)
                tok = rjieba
                words = user_words()
                for word, freq, tag in words:
                    tok.add_word(word, freq, tag)
                _PLACES = frozenset(w for w, _f, tag in words if tag == "ns")
                _PLACE_HEADS = frozenset(name[:2] for name in _PLACES)
                _SEGMENTER = tok
    return _SEGMENTER


_LAST_BOUNDS: tuple[str, set[int]] = ("", set())


def _boundaries(clause: str) -> set[int]:
    """Offsets where a word of the segmentation starts or ends (0 and len included): the
    boundaries of the segmenter's words (jieba's ``lcut(clause, HMM=False)``). The last
    clause's answer is kept: the term finder and the typo finder of one clause both ask (the
    caller must not change it)."""
    global _LAST_BOUNDS
    last = _LAST_BOUNDS
    if last[0] == clause and clause:
        return last[1]
    out = _compute_boundaries(clause)
    _LAST_BOUNDS = (clause, out)
    return out


def _compute_boundaries(clause: str) -> set[int]:
    out = {0, len(clause)}
    for _word, start, end in segmenter().tokenize(clause, "default", False):
        out.add(start)
        out.add(end)
    return out


def _in_division_name(clause: str, start: int, end: int) -> bool:
    """Whether ``clause[start:end]`` lies inside a division name (3 to 8 characters) of the
    clause, looked up only where the clause has the first two characters of one."""
    n = len(clause)
    heads, places = _PLACE_HEADS, _PLACES
    for a in range(max(0, end - 8), start + 1):
        if clause[a : a + 2] in heads:
            for size in range(max(3, end - a), min(8, n - a) + 1):
                if clause[a : a + size] in places:
                    return True
    return False


def _find_terms(clause: str, lex: Lexicon) -> list[tuple[int, int, str]]:
    """Non-overlapping leftmost-longest matches ``(start, end, term)`` aligned with the words
    of the segmentation -- a one-character term is a whole word (管 inside 管理 is not 管; 断
    inside 不断 is not 断), a longer one starts or ends a word (赌博 of 聚众赌博) -- and not
    inside a place name (梧桐 of 梧桐里小区). At one start the longest term that is aligned
    is taken; a start inside a place name takes none.

    Every occurrence of every term comes from one pass of the lexicon's Aho-Corasick
    automaton (pyahocorasick); the segmentation and the place-suffix spans are computed once
    per clause, and only when a term needs them (a longer term at the start or the end of the
    clause is aligned without segmenting)."""
    if _SEGMENTER is None:
        segmenter()  # loads the division names
    hits = sorted((end + 1 - size, -size) for end, size in lex.automaton.iter(clause))
    if not hits:
        return []
    found: list[tuple[int, int, str]] = []
    n = len(clause)
    bounds: set[int] | None = None
    suffixed: list[tuple[int, int]] | None = None
    i = 0
    skip = -1  # a start inside a place name
    for start, minus_size in hits:
        if start < i or start == skip:
            continue
        end = start - minus_size
        # a one-character term must be a word; a longer one must start or end one (赌博 in
        # the word 聚众赌博 counts, 管 in 管理 does not)
        if "\u4e00" <= clause[start] <= "\u9fff" and (end - start == 1 or start > 0 and end < n):
            if bounds is None:
                bounds = _boundaries(clause)
            start_ok = start in bounds
            end_ok = end in bounds
            if not (start_ok and end_ok or end - start > 1 and (start_ok or end_ok)):
                continue  # a shorter term at this start may be aligned
        if suffixed is None:
            suffixed = [(m.start(), m.end()) for m in RULES.place_pattern.finditer(clause)]
        if any(ps <= start and end <= pe for ps, pe in suffixed) or _in_division_name(
            clause, start, end
        ):
            skip = start
            continue
        found.append((start, end, clause[start:end]))
        i = end
    return found


_SOUND_LOCK = threading.Lock()
_PARTICLES = frozenset("了着过的地得")
_PLACE_ENDS = frozenset("省市区县镇乡村街路巷里")
_SYLLABLES: dict[str, str] = {}  # toneless pinyin -> one private-use character naming it
_NO_SOUND = "\x00"  # what a character that is not CJK is heard as: in no term's sound


def _syllable(sound: str) -> str:
    """The one-character name of a toneless syllable (U+E000 on), assigned on first use."""
    name = _SYLLABLES.get(sound)
    if name is None:
        with _SOUND_LOCK:
            name = _SYLLABLES.setdefault(sound, chr(0xE000 + len(_SYLLABLES)))
    return name


class _Heard(dict[int, str]):
    """A ``str.translate`` table: a CJK character -> the name of its toneless syllable (its
    first reading, pypinyin), filled on first use (bounded: the ~21,000 CJK characters);
    anything else -> ``_NO_SOUND``."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        if not _is_cjk(ch):
            return _NO_SOUND
        from pypinyin import lazy_pinyin  # import here: only texts that need it pay

        name = self[code] = _syllable(str(lazy_pinyin(ch)[0]))
        return name


_HEARD = _Heard()
_SOUNDS: Any = None  # ahocorasick.Automaton: a term's syllable names -> (size, (term, ...))


def _sounds() -> Any:
    """Lexicon terms of 2-4 CJK characters by their toneless pinyin (pypinyin, phrase-aware:
    the reading of a polyphonic character in that term), as an Aho-Corasick automaton over
    syllable names (pyahocorasick): the sound of 塌陷 ('ta', 'xian') -> (2, ('塌陷',)), the
    terms of one sound in descending order. Built once (thread-safe)."""
    global _SOUNDS
    if _SOUNDS is None:
        from pypinyin import lazy_pinyin

        index: dict[str, list[str]] = {}
        for term, codes in LEXICON.terms.items():
            # not a term like a place (园区 would hear 北沅区)
            placelike = term[-1] in _PLACE_ENDS
            cjk = all(_is_cjk(c) for c in term)
            if 2 <= len(term) <= 4 and cjk and codes and not placelike:
                key = "".join(_syllable(str(p)) for p in lazy_pinyin(term))
                if len(key) == len(term):  # one syllable per character (as the clause is heard)
                    index.setdefault(key, []).append(term)
        automaton = ahocorasick.Automaton()
        for key, terms in index.items():
            automaton.add_word(key, (len(key), tuple(sorted(terms, reverse=True))))
        automaton.make_automaton()
        with _SOUND_LOCK:
            if _SOUNDS is None:
                _SOUNDS = automaton
    return _SOUNDS


def _homophones(clause: str, matches: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Typos of pinyin input: spans of ``clause`` outside ``matches`` that sound like a
    lexicon term of 2-4 characters, differ from it in one character (not a particle), and
    where the segmenter finds no word (踏陷 sounds like 塌陷 and jieba cuts it 踏/陷; 实施
    sounds like 设施 but is a word). Returns ``(start, end, term)`` with the lexicon's term,
    leftmost-longest. The clause is heard as a string of syllable names (``str.translate``)
    and every term sound in it found in one pass of an Aho-Corasick automaton. Why not a
    spelling library: none packaged for Chinese works offline on the project's own
    vocabulary; pypinyin gives the readings."""
    n = len(clause)
    if n < 2:
        return []
    hits = sorted(
        (end + 1 - size, -size, terms)
        for end, (size, terms) in _sounds().iter(clause.translate(_HEARD))
    )
    if not hits:
        return []
    covered = bytearray(n + 1)
    for start, end, _term in matches:  # a term may hold the right half of a typo (陷了 of 踏陷了)
        covered[start:end] = b"\x01" * (end - start)
    bounds: set[int] | None = None
    out: list[tuple[int, int, str]] = []
    i = 0
    for start, minus_size, terms in hits:
        end = start - minus_size
        if start < i or all(covered[start:end]):
            continue  # inside a typo found, or inside a term found as spelled
        span = clause[start:end]
        for term in terms:
            # one character mistyped, the others as in the term (踏陷 / 塌陷), not a particle
            kept = sum(1 for a, b in zip(span, term, strict=True) if a == b and a not in _PARTICLES)
            if kept != end - start - 1:
                continue
            # jieba knows no word there: each character stands alone (沅区 of 北沅区 does not)
            bounds = _boundaries(clause) if bounds is None else bounds
            if all(k in bounds for k in range(start, end + 1)) and not _in_division_name(
                clause, start, end
            ):
                out.append((start, end, term))
                i = end
                break
    return out


def _negated(clause: str, matches: list[tuple[int, int, str]]) -> set[int]:
    """Indexes of matches a negation cue applies to (pre-cue before, post-cue after, close).

    A match overlapping a cue (坏 in 没坏) is part of the cue, not evidence: dropped too.
    """
    cues = [(m.lastgroup, m.start(), m.end()) for m in RULES.cue_pattern.finditer(clause)]
    if not cues:
        return set()
    window = RULES.negation_window
    out: set[int] = set()
    for idx, (start, end, _term) in enumerate(matches):
        for kind, c_start, c_end in cues:
            inside = kind != "mask" and start < c_end and c_start < end
            before = kind == "pre" and c_end <= start and start - c_end <= window
            after = kind == "post" and c_start >= end and c_start - end <= window
            if inside or before or after:
                out.add(idx)
    return out


def _bigram_hits(clause: str, matches: list[tuple[int, int, str]]) -> list[str]:
    covered = bytearray(len(clause))
    for start, end, _ in matches:
        covered[start:end] = b"\x01" * (end - start)
    grams = LEXICON.bigrams
    hits = []
    for i in range(len(clause) - 1):
        if not covered[i] and not covered[i + 1]:
            gram = clause[i : i + 2]
            if gram in grams:
                hits.append(gram)
    return hits


_SENTENCE = re.compile(r"[^。！？!?;；\n]+[。！？!?;；\n]*")
_TITLE = re.compile(r"^([^\s。！？!?：:]{6,40})[\s\n]+(?=\S{20,})")


def parts(text: str) -> list[tuple[Part, str]]:
    """The text split the way a dispatcher reads it: ``title`` (a message-board letter's
    heading: a first line or a first segment before a space, with no sentence punctuation, when
    a body follows), ``request`` (sentences with an explicit ask: 恳请/希望/要求/请…) and
    ``body`` (the rest: background, citations). Empty parts are left out."""
    title = ""
    rest = text.strip()
    head = _TITLE.match(rest)
    if head and not head.group(1).startswith(("喂", "你好", "您好")):
        title, rest = head.group(1), rest[head.end() :]
    requests: list[str] = []
    body: list[str] = []
    for sentence in _SENTENCE.findall(rest):
        if _HAS_REQUEST_CUE(sentence):
            requests.append(sentence)
        else:
            body.append(sentence)
    out: list[tuple[Part, str]] = []
    if title:
        out.append(("title", title))
    if requests:
        out.append(("request", "".join(requests)))
    if body:
        out.append(("body", "".join(body)))
    return out


class ClauseReading(NamedTuple):
    """What one clause says, before the text's other clauses are weighed in: its ``terms``
    in order with their factor (``location_factor`` when a place word follows: 公交站旁边;
    ``identity_factor`` after the writer's identity: 我是残疾人), its pinyin ``typos``
    (lexicon term, as typed), the terms it ``denied`` (negated or hypothetical), whether it
    has a damage ``cue`` and one ``cue_outside`` the words of events."""

    terms: tuple[tuple[str, float], ...]
    typos: tuple[tuple[str, str], ...]
    denied: tuple[str, ...]
    cue: bool
    cue_outside: bool


#: clauses whose reading is kept (functools.lru_cache): stock phrases of operators and
#: residents repeat (您好 / 诉求：希望有关部门尽快处理; 60 % of the held-out corpus's clauses
#: are repeats, 74 % of the simulator's); ~300 bytes each
CLAUSE_CACHE = 16384


@functools.lru_cache(maxsize=CLAUSE_CACHE)
def read_clause(clause: str) -> ClauseReading:
    """The reading of one clause of normalized text (pure: a function of the clause and the
    lexicon and rules loaded at import, so it is cached)."""
    lex, rules = LEXICON, RULES
    matches = _find_terms(clause, lex)
    cue = _HAS_DAMAGE_CUE(clause)
    cue_outside = cue and _HAS_DAMAGE_CUE(_without_event_terms(clause, matches, lex))
    negated = _negated(clause, matches) if matches else set()
    # "我是残疾人" / "作为业主": who is writing, not what the report is about
    who = rules.identity_pattern.search(clause)
    terms = []
    for start, end, term in matches:
        factor = rules.location_factor if _is_location(clause, end) else 1.0
        if who is not None and who.end() <= start:
            factor *= rules.identity_factor
        terms.append((term, factor))
    typos = _homophones(clause, matches)
    return ClauseReading(
        tuple(terms),
        tuple((term, clause[a:b]) for a, b, term in typos) if typos else (),
        tuple(matches[idx][2] for idx in sorted(negated)) if negated else (),
        cue,
        cue_outside,
    )


def score(
    text: str,
) -> tuple[dict[str, float], dict[str, list[str]], dict[str, dict[str, float]]]:
    """Scores per code, evidence terms per code and score per code and part for ``text``
    (already normalized). A term counts once, in the heaviest part it occurs in
    (``part_weights``: the title and the explicit request weigh more than the background)."""
    lex, rules = LEXICON, RULES
    scores: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    by_part: dict[str, dict[str, float]] = {}
    present: list[str] = []
    weight_of = rules.part_weights

    def add(code: str, weight: float, term: str, part: str) -> None:
        scores[code] = scores.get(code, 0.0) + weight
        slot = by_part.setdefault(code, {})
        slot[part] = slot.get(part, 0.0) + weight
        ev = evidence.setdefault(code, [])
        if term not in ev:
            ev.append(term)

    ordered = sorted(parts(text), key=lambda kv: -weight_of[kv[0]])
    term_part: dict[str, str] = {}
    damaged = False  # a damage cue anywhere
    damaged_outside = False  # … outside the words of events (塌 of 塌陷 is the event's)
    found: list[tuple[Part, ClauseReading]] = []
    denied: set[str] = set()  # terms the resident says it is not about ("不是投诉物业")
    for part, chunk in ordered:
        for clause in _clauses(chunk):
            reading = read_clause(clause)
            damaged = damaged or reading.cue
            damaged_outside = damaged_outside or reading.cue_outside
            denied.update(reading.denied)
            found.append((part, reading))
    spelled: set[str] | None = None  # every term found as spelled, when a clause has a typo
    for part, reading in found:
        pw = weight_of[part]
        for term, typed in reading.typos:  # as heard: weaker than the term spelled right
            if spelled is None:
                spelled = {t for _part, r in found for t, _factor in r.terms}
            if term not in denied and term not in term_part and term not in spelled:
                present.append(term)
                term_part[term] = part
                for code, weight in lex.terms[term]:
                    add(code, weight * rules.homophone_factor * pw, typed, part)
    for part, reading in found:
        pw = weight_of[part]
        for term, factor in reading.terms:
            if term in denied or term in term_part:
                continue
            present.append(term)
            term_part[term] = part
            for code, weight in lex.terms[term]:
                add(code, weight * factor * pw, term, part)
    # a combination's part counts when it is (the head of) a matched, non-negated term
    atoms: dict[str, str] = {}
    for term in present:
        for atom in lex.atoms_in.get(term, ()):
            atoms.setdefault(atom, term_part[term])
    done: set[int] = set()
    for atom in atoms:
        for idx in lex.combos_by_atom[atom]:
            combo, code, weight = lex.combos[idx]
            if idx not in done and all(map(atoms.__contains__, combo)):
                done.add(idx)
                add(code, weight, "+".join(combo), atoms[combo[0]])
    if damaged and not lex.part_codes.isdisjoint(scores):
        for code in list(scores):
            # a surface (路面) caving in is the 路面塌陷 event; a part (井盖) that does is broken
            if code in lex.part_codes and (damaged_outside or code not in rules.surface_parts):
                scores[code] += rules.part_damage_bonus
    return scores, evidence, by_part


def _without_event_terms(clause: str, matches: list[tuple[int, int, str]], lex: Lexicon) -> str:
    """``clause`` with the words (two characters or more) that score no part category blanked
    out: for a surface part (``surface_parts``: 路面) the damage cue must not be a piece of
    another category's word (塌 of 塌陷 makes a 路面塌陷 event, not a damaged 路面; a 井盖
    that 塌陷 is a broken 井盖); a cue that is a word by itself (倒 of 护栏倒了) stays."""
    for start, end, term in matches:
        if end - start > 1 and not any(code in lex.part_codes for code, _w in lex.terms[term]):
            clause = clause[:start] + " " * (end - start) + clause[end:]
    return clause


def _is_location(clause: str, end: int) -> bool:
    """Whether the term ending at ``end`` is followed by a place word (公交站旁边, 电线杆上...)."""
    return clause.startswith(_LOCATION_WORDS, end)


def _rank_key(item: tuple[str, float]) -> tuple[float, bool, bool, str]:
    """Best score first; on a tie a routable category beats X9999 (a court word next to a
    违建 is still a 违建), an event beats a part (a part noun without a damage cue is mostly a
    place), then the more urgent priority wins (safer routing)."""
    code, value = item
    unknown = code == taxonomy.UNKNOWN_CODE
    return (-value, unknown, code in LEXICON.part_codes, taxonomy.get(code).priority)


_CJK = re.compile("[\u4e00-\u9fff]")


def _has_content(text: str) -> bool:
    return _CJK.search(text) is not None or any(ch.isalpha() for ch in text)


# what the rules engine writes into gov.reports.classifier
RULES_CLASSIFIER = "rules-v2"


def request_type_of(norm: str) -> str:
    """The request type (``request_types.csv`` code) of a normalized text.

    Cues are ``request_types`` of ``classify_rules.json`` (set from the examples of
    ``request_types.csv`` and ``../shared/classify_cases.tsv``): praise when thanked and
    nothing is demanded; report, help, suggestion by their cue, in that order; consult for a
    consult cue or a question with no demand in it; else complaint (the default type).
    """
    has = _HAS_TYPE_CUE
    demand = has["demand"](norm)
    for code in RULES.request_types["order"]:
        if code == "praise":
            if not demand and has["praise"](norm):
                return code
        elif code == "consult":
            asked = has["consult"](norm) or has["question"](norm)
            if asked and not demand:
                return code
        elif has[code](norm):
            return code
    return taxonomy.DEFAULT_REQUEST_TYPE


def _result(
    category: taxonomy.Category,
    confidence: float,
    evidence: tuple[str, ...],
    source: Source,
    request_type: str = taxonomy.DEFAULT_REQUEST_TYPE,
    part: Part = "",
) -> Classification:
    return Classification(
        code=category.code,
        major=category.major,
        minor=category.minor,
        confidence=round(confidence, 4),
        priority=category.priority,
        sla_hours=category.sla_hours,
        department=category.department,
        level=category.level,
        evidence=evidence,
        source=source,
        request_type=request_type,
        taxonomy_version=taxonomy.VERSION,
        classifier="hint" if source == "hint" else RULES_CLASSIFIER,
        part=part,
    )


def _evidence_terms(terms: list[str]) -> tuple[str, ...]:
    """Evidence as terms found in the text (a combination ``A+B`` is reported as A and B)."""
    out: list[str] = []
    for term in terms:
        for part in term.split("+"):
            if part not in out:
                out.append(part)
    return tuple(out)


def classify_rules(text: str, hint: str | None = None) -> Classification:
    """The taxonomy category of a report text, with its request type, by the rules alone.

    A ``hint`` (the upstream ``category_hint``) wins when it is a valid code other than
    ``X9999``; otherwise it is ignored. Without a usable hint the text decides; when it cannot
    tell (empty or noise text, confidence below the threshold, or praise and thanks with no
    request in them, taxonomy v2.1: X9999 is for 表扬/感谢/无实际诉求) the answer is ``X9999``
    with ``source="fallback"``. ``part`` tells which part of the text (title, request, body)
    gave the chosen code most of its score.
    """
    if hint is not None and hint != taxonomy.UNKNOWN_CODE and taxonomy.is_valid(hint):
        return _result(taxonomy.get(hint), 1.0, (), "hint")
    norm = normalize(text or "")
    if not _has_content(norm):
        return _result(taxonomy.unknown(), 0.0, (), "fallback")
    kind = request_type_of(norm)
    scores, evidence, by_part = score(norm)
    if not scores or kind == "praise":
        return _result(taxonomy.unknown(), 0.0, (), "fallback", kind)
    ranked = sorted(scores.items(), key=_rank_key)
    best_code, s1 = ranked[0]
    s2 = ranked[1][1] if len(ranked) > 1 else 0.0
    confidence = s1 / (s1 + s2) * (1.0 - math.exp(-s1 / RULES.confidence_scale))
    if confidence < RULES.threshold:
        return _result(taxonomy.unknown(), confidence, (), "fallback", kind)
    terms = _evidence_terms(evidence[best_code])
    deciding = max(by_part[best_code].items(), key=lambda kv: kv[1])[0]
    # X9999 terms name what the hotline does not take (courts, lawsuits): 人工分拨 as well
    source: Source = "fallback" if best_code == taxonomy.UNKNOWN_CODE else "text"
    return _result(taxonomy.get(best_code), confidence, terms, source, kind, deciding)  # type: ignore[arg-type]


# --- the learned model, when there is one ------------------------------------------------

_MODEL: dict[str, Any] = {}


def use_model(model: Any) -> None:
    """Make ``model`` (a ``classify_model.Model``, or None for the rules alone) the one
    ``classify`` uses, instead of the newest file of the settings' model directory."""
    _MODEL["model"] = model


def active_model() -> Any:
    """The model ``classify`` uses: set by ``use_model``, else the newest model file in
    ``Settings.model_dir`` (loaded once), else None. A model file that cannot be loaded is
    logged and the rules classify alone."""
    if "model" not in _MODEL:
        from pipelines import classify_model
        from pipelines.settings import get_settings

        path = classify_model.newest(get_settings().model_dir)
        model = None
        if path is not None:
            try:
                model = classify_model.load(path)
            except classify_model.ModelError as exc:
                logging.getLogger(__name__).warning("classifier model not used: %s", exc)
        _MODEL["model"] = model
    return _MODEL["model"]


def classify(text: str, hint: str | None = None) -> Classification:
    """The taxonomy category and request type of a report text: by the active model
    (``active_model``; ``classifier = model-<version>``) when there is one, else by the rules
    (``classify_rules``; ``classifier = rules-v2``). Same shape and contract either way."""
    model = active_model()
    if model is not None:
        return model.classify(text, hint)
    return classify_rules(text, hint)
