"""Classify a Chinese report text into the taxonomy (pure logic, no services).

The engine is a weighted lexicon matcher, loaded once at import from project data:

* ``data/classify_lexicon.csv`` -- synonym groups (``code,weight,terms``); a term ``A+B``
  scores when all its parts occur; code ``-`` marks neutral terms that only take their span.
* ``data/classify_rules.json`` -- threshold, negation cues, damage cues, clause breaks and a
  traditional -> simplified character table.

Steps: normalize (NFKC: full-width -> half-width; lower case; traditional -> simplified), split
into clauses, find terms non-overlapping leftmost-longest per clause, drop negated terms
("路灯没坏，是井盖丢了", "不是路灯的问题", "万一着火"; "是不是" is a question, not a
negation), halve a term followed by a place word (公交站旁边 is a place, not the object), fire
combinations whose parts are matched terms or their heads (垃圾桶 is a 桶), add a bonus to part
categories (P...) when a damage cue occurs, back off to character bigrams of lexicon terms on
text no term covered (typos), then rank: best score, then event before part, then the more
urgent priority. ``confidence = s1 / (s1 + s2) * (1 - exp(-s1 / scale))`` with s1, s2 the two
best scores; below the threshold the answer is ``X9999`` (source ``fallback``, with that low
confidence). Evidence terms are given in normalized form (as found in ``normalize(text)``).
"""

from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines import taxonomy
from pipelines.errors import GovstreamError

DATA_DIR = Path(__file__).parent / "data"
LEXICON_PATH = DATA_DIR / "classify_lexicon.csv"
RULES_PATH = DATA_DIR / "classify_rules.json"
NEUTRAL = "-"
ASPECT_PARTICLES = "了着过"  # 塌了 has the head 塌

Source = Literal["hint", "text", "fallback"]


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
    t2s: dict[int, int]


@dataclass(frozen=True, slots=True)
class Lexicon:
    terms: dict[str, tuple[tuple[str, float], ...]]  # term -> ((code, weight), ...)
    lengths: dict[str, tuple[int, ...]]  # first char -> term lengths, longest first
    combos: tuple[tuple[tuple[str, ...], str, float], ...]  # (parts, code, weight)
    combos_by_atom: dict[str, tuple[int, ...]]  # combo part -> indexes into combos
    atoms_in: dict[str, tuple[str, ...]]  # term -> combo parts it contains
    bigrams: dict[str, tuple[tuple[str, float], ...]]
    part_codes: frozenset[str]


# --- loading -----------------------------------------------------------------------------


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def load_rules(path: Path = RULES_PATH) -> Rules:
    """Read ``classify_rules.json``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        trad, simp = raw["t2s_traditional"], raw["t2s_simplified"]
        if len(trad) != len(simp):
            raise LexiconError(f"{path}: t2s tables differ in length")
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
            t2s=str.maketrans(trad, simp),
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
                if code != NEUTRAL and (not taxonomy.is_valid(code) or code == "X9999"):
                    raise LexiconError(f"{path}:{n}: unknown code {code!r}")
                parts = [t.strip() for t in terms.split("|") if t.strip()]
                rows.append((code, float(weight), parts))
    except OSError as exc:
        raise LexiconError(f"cannot read lexicon {path}: {exc}") from exc
    except ValueError as exc:
        raise LexiconError(f"{path}: {exc}") from exc
    return rows


def _normalize_term(term: str, t2s: dict[int, int]) -> str:
    return unicodedata.normalize("NFKC", term).lower().translate(t2s)


def load_lexicon(rules: Rules, path: Path = LEXICON_PATH) -> Lexicon:
    """Read ``classify_lexicon.csv`` into lookup tables."""
    singles: dict[str, dict[str, float]] = {}
    combo_list: list[tuple[tuple[str, ...], str, float]] = []
    for code, weight, terms in _read_lexicon_rows(path):
        for term in terms:
            parts = tuple(_normalize_term(p, rules.t2s) for p in term.split("+") if p)
            if len(parts) > 1:
                combo_list.append((parts, code, weight))
                for part in parts:
                    singles.setdefault(part, {})
                continue
            codes = singles.setdefault(parts[0], {})
            if code != NEUTRAL:
                codes[code] = max(weight, codes.get(code, 0.0))
    terms_map = {t: tuple(sorted(c.items())) for t, c in singles.items()}
    lengths: dict[str, set[int]] = {}
    for t in terms_map:
        lengths.setdefault(t[0], set()).add(len(t))
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
    return Lexicon(
        terms=terms_map,
        lengths={c: tuple(sorted(ls, reverse=True)) for c, ls in lengths.items()},
        combos=tuple(combo_list),
        combos_by_atom={a: tuple(ix) for a, ix in by_atom.items()},
        atoms_in=atoms_in,
        bigrams=_bigram_index(terms_map),
        part_codes=part_codes,
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


# --- the engine --------------------------------------------------------------------------


def normalize(text: str) -> str:
    """NFKC (full-width -> half-width), lower case, traditional -> simplified characters."""
    return unicodedata.normalize("NFKC", text).lower().translate(RULES.t2s)


def _clauses(text: str) -> list[str]:
    return [c for c in RULES.break_pattern.split(text) if c]


def _find_terms(clause: str, lex: Lexicon) -> list[tuple[int, int, str]]:
    """Non-overlapping leftmost-longest matches ``(start, end, term)``."""
    found: list[tuple[int, int, str]] = []
    lengths, terms = lex.lengths, lex.terms
    n = len(clause)
    i = 0
    while i < n:
        lens = lengths.get(clause[i])
        if lens is not None:
            for size in lens:
                end = i + size
                if end <= n and clause[i:end] in terms:
                    found.append((i, end, clause[i:end]))
                    i = end - 1
                    break
        i += 1
    return found


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


def score(text: str) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Scores per code and the evidence terms per code for ``text`` (already normalized)."""
    lex, rules = LEXICON, RULES
    scores: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    present: list[str] = []

    def add(code: str, weight: float, term: str) -> None:
        scores[code] = scores.get(code, 0.0) + weight
        ev = evidence.setdefault(code, [])
        if term not in ev:
            ev.append(term)

    for clause in _clauses(text):
        matches = _find_terms(clause, lex)
        negated = _negated(clause, matches) if matches else set()
        for idx, (_start, end, term) in enumerate(matches):
            if idx in negated or term in present:
                continue
            present.append(term)
            factor = rules.location_factor if _is_location(clause, end) else 1.0
            for code, weight in lex.terms[term]:
                add(code, weight * factor, term)
        if lex.bigrams:
            for gram in _bigram_hits(clause, matches):
                for code, weight in lex.bigrams[gram]:
                    add(code, weight * rules.bigram_weight, gram)
    # a combination's part counts when it is (the head of) a matched, non-negated term
    atoms: set[str] = set()
    for term in present:
        atoms.update(lex.atoms_in.get(term, ()))
    done: set[int] = set()
    for atom in atoms:
        for idx in lex.combos_by_atom[atom]:
            parts, code, weight = lex.combos[idx]
            if idx not in done and all(p in atoms for p in parts):
                done.add(idx)
                add(code, weight, "+".join(parts))
    if any(c in lex.part_codes for c in scores) and any(cue in text for cue in rules.damage_cues):
        for code in list(scores):
            if code in lex.part_codes:
                scores[code] += rules.part_damage_bonus
    return scores, evidence


def _is_location(clause: str, end: int) -> bool:
    """Whether the term ending at ``end`` is followed by a place word (公交站旁边, 电线杆上...)."""
    follow = clause[end : end + RULES.location_span]
    return any(follow.startswith(w) for w in RULES.location_words)


def _rank_key(item: tuple[str, float]) -> tuple[float, bool, str]:
    """Best score first; on a tie an event beats a part (a part noun without a damage cue is
    mostly a place), then the more urgent priority wins (safer routing)."""
    code, value = item
    return (-value, code in LEXICON.part_codes, taxonomy.get(code).priority)


def _has_content(text: str) -> bool:
    return any(_is_cjk(ch) or ch.isalpha() for ch in text)


# what the rules engine writes into gov.reports.classifier
RULES_CLASSIFIER = "rules-v2"
# request-type cues (request_types.csv): the first type whose cue occurs wins, in this order
REQUEST_TYPE_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("report", ("举报", "查处", "依法处理", "严查", "取缔")),
    ("help", ("求助", "救命", "快来", "快派", "帮帮", "急!", "被困")),
    ("suggestion", ("建议", "提议", "希望增设", "能否增设")),
    ("consult", ("请问", "咨询", "想问", "想了解", "吗?", "么?", "是否", "怎么办理", "需要什么")),
    ("praise", ("感谢", "表扬", "点赞", "锦旗", "谢谢")),
)


def request_type_of(norm: str) -> str:
    """The request type (``request_types.csv`` code) of a normalized text; ``complaint`` when
    no cue occurs."""
    for code, cues in REQUEST_TYPE_CUES:
        if any(cue in norm for cue in cues):
            return code
    return taxonomy.DEFAULT_REQUEST_TYPE


def _result(
    category: taxonomy.Category,
    confidence: float,
    evidence: tuple[str, ...],
    source: Source,
    request_type: str = taxonomy.DEFAULT_REQUEST_TYPE,
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
    )


def _evidence_terms(terms: list[str]) -> tuple[str, ...]:
    """Evidence as terms found in the text (a combination ``A+B`` is reported as A and B)."""
    out: list[str] = []
    for term in terms:
        for part in term.split("+"):
            if part not in out:
                out.append(part)
    return tuple(out)


def classify(text: str, hint: str | None = None) -> Classification:
    """The taxonomy category of a report text.

    A ``hint`` (the upstream ``category_hint``) wins when it is a valid code other than
    ``X9999``; otherwise it is ignored. Without a usable hint the text decides; when it cannot
    tell (empty or noise text, or confidence below the threshold) the answer is ``X9999``
    with ``source="fallback"``.
    """
    if hint is not None and hint != taxonomy.UNKNOWN_CODE and taxonomy.is_valid(hint):
        return _result(taxonomy.get(hint), 1.0, (), "hint")
    norm = normalize(text or "")
    if not _has_content(norm):
        return _result(taxonomy.unknown(), 0.0, (), "fallback")
    kind = request_type_of(norm)
    scores, evidence = score(norm)
    if not scores:
        return _result(taxonomy.unknown(), 0.0, (), "fallback", kind)
    ranked = sorted(scores.items(), key=_rank_key)
    best_code, s1 = ranked[0]
    s2 = ranked[1][1] if len(ranked) > 1 else 0.0
    confidence = s1 / (s1 + s2) * (1.0 - math.exp(-s1 / RULES.confidence_scale))
    if confidence < RULES.threshold:
        return _result(taxonomy.unknown(), confidence, (), "fallback", kind)
    terms = _evidence_terms(evidence[best_code])
    return _result(taxonomy.get(best_code), confidence, terms, "text", kind)
