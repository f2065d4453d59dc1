"""Personal data: resident ID number check (GB 11643) and masking before data leaves an agent.

Raw phone numbers, ID numbers and names never reach ClickHouse, the dead-letter table or logs:
they are masked (``138****1234``, first 6 + last 4 of an ID number, ``张*``) and a salted hash
is kept where analysts need to join the same person across events.

Free text (:func:`scrub_text`), image URLs (:func:`scrub_url`) and log lines (:func:`scrub_log`)
are searched for numbers however residents type them:

- width and script: full-width digits (``１３９…``), the ideographic space U+3000, the full-width
  hyphen ``－`` and a full-width ``Ｘ``/``ｘ`` check character are folded per character with
  Unicode NFKC (UAX #15), and every decimal digit (``unicodedata.decimal``) counts as its ASCII
  digit; only the masked number is rewritten, the rest of the text stays as written;
- separators: digit groups may be split by up to 8 characters that are spaces, punctuation,
  symbols (emoji included), format or combining marks (``138 1234 5678``, ``138.1234.5678``,
  ``138😀1234😀5678``, keycaps); letters, CJK characters and ``*`` (the mask) end a number.
  Two groups joined by a lone ``.`` are a decimal number, and groups joined by ``,`` in threes
  are an amount (``13,800,000,000``): neither is a phone;
- a number starts and ends at a digit-group boundary, so a phone inside a longer run of digits
  (an order number) is not one; letters around it do not matter (``sfz430…``, ``tel138…``);
  from one group on, the longest number wins (an ID number ``130102 1985…`` is not a phone);
- mobiles: ``1[3-9]`` + 9 digits (MIIT numbering plan, as :func:`is_mobile`), optionally after
  ``+86``, ``0086`` or ``86``; masked as :func:`mask_phone` (the prefix is dropped);
- landlines: trunk ``0`` + area code (``10``, ``2x`` or three digits from ``3``) + a 7- or
  8-digit local number (China's numbering plan as registered with the ITU, E.164; a local
  number starting with 1, which the plan does not assign, is masked all the same), written
  ``0730-1234567``, ``(0730)1234567``, ``073012345678``, or without the trunk 0 after
  ``+86``/``0086``; masked by :func:`mask_phone` of the national form (first 3 and last 4
  digits). A bare 7/8-digit local number is too like any other number and is left alone.
  The ``phonenumbers`` package was weighed: its "valid" matcher rejects numbers residents do
  write (``073012345678``: 0730 has 7-digit locals), its "possible" matcher is this length rule,
  and it finds no number split by emoji, so it would add 48 MB for less;
- ID numbers: 18 characters (17 digits and a digit or X, GB 11643-1999) or the 15-digit form of
  GB 11643-1989 (issued until 2004, still on old records). An 18-character run written as one
  group is masked whatever it holds (as before); one split into groups, and every 15-digit run,
  must start with a province code of GB/T 2260 and hold a real birth date, so that dates and
  amounts written in groups are not taken for one. Masked by :func:`mask_id_number`.

Names inside free text (:func:`scrub_names`, also applied by :func:`scrub_text`) are masked as
:func:`mask_name` masks them (the first character stays), after a cue that says a name follows:

- a label (``姓名``, ``名字``): the next 2–4 CJK characters, whatever the first;
- a self-introduction or role (``我叫``, ``我是``, ``本人``, ``联系人``, ``户主``, ``网格员`` …, see
  ``_NAME_CUES``): a common family name (``_SURNAMES``: the 100-odd most common ones of the
  Ministry of Public Security's 2020 national name report, 《二〇二〇年全国姓名报告》, and the
  compound ones of 《百家姓》) then 1–2 given-name characters;
- a family name + given name before an honorific (``张三先生`` → ``张*先生``).
  A family name alone before an honorific (``王女士``, ``张先生``) is left as written: the family
  name is the part :func:`mask_name` keeps anyway, and the honorific is no name, so masking it
  (``王**``) would hide nothing and cost the text its meaning. ``先生`` alone is no name either.

To keep false positives low, a given name stops at characters that rarely stand in one (the
particles, verbs and address words of ``_NOT_GIVEN``: ``我叫张三住在`` masks ``三`` only), and
family names that are everyday words (向, 于, 万, 常, 方, 易, 关, 包, 单, 车, 文, 齐) are not
taken as one. A name written without a cue ("张三说路灯坏了") is not found: no rule tells it
from ordinary words without a name dictionary.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import unicodedata
from datetime import date

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^[0-9]{17}[0-9X]$")
_PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")


def _fold_char(char: str) -> str:
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 else char


class _FoldTable(dict[int, str]):
    """``str.translate`` table of :func:`fold`, filled as characters are first met (a
    character's folding never changes); at most ``MAX`` entries, so text made of every code
    point cannot grow it without bound (past it a character is folded each time)."""

    MAX = 65_536

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < self.MAX:
            self[code] = folded
        return folded


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """``text`` with each character folded by NFKC (full-width ``１``, ``Ｘ``, ``－``, U+3000 →
    ``1``, ``X``, ``-``, space) and every decimal digit of any script as its ASCII digit.

    Character by character, so the result has the length of ``text`` and positions match
    (a character whose NFKC form is longer than one character stays as it is)."""
    if text.isascii():
        return text
    return text.translate(_FOLD)


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_number_problem(number: str) -> str | None:
    """Why an 18-character resident ID number is invalid, or None when it is valid.

    Full-width digits and ``Ｘ`` count as their ASCII forms (see :func:`fold`)."""
    value = fold(number).strip().upper()
    if not _ID_RE.match(value):
        return "not 17 digits followed by a digit or X"
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return f"birth date {value[6:14]} is not a date"
    expected = id_check_char(value[:17])
    if value[17] != expected:
        return f"check character is {value[17]}, expected {expected}"
    return None


def is_mobile(phone: str) -> bool:
    """True for an 11-digit mainland mobile number (optionally +86 / 0086 / 86 prefixed)."""
    return bool(_PHONE_RE.match(_digits_of_phone(phone)))


def _digits_of_phone(phone: str) -> str:
    digits = re.sub(r"[^0-9]", "", fold(phone))
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits


def mask_phone(phone: str) -> str:
    """``13812341234`` → ``138****1234``; anything else keeps at most its first 3 and last 4
    digits (ASCII, whatever width they were typed in); a +86 / 0086 prefix is dropped."""
    digits = _digits_of_phone(phone)
    if len(digits) >= 7:
        return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
    return "*" * len(digits)


def mask_id_number(number: str) -> str:
    """First 6 (the area) and last 4 characters; the birth date and sequence are hidden
    (full-width characters come out as ASCII)."""
    value = fold(number).strip().upper()
    if len(value) <= 10:
        return "*" * len(value)
    return f"{value[:6]}{'*' * (len(value) - 10)}{value[-4:]}"


def mask_name(name: str) -> str:
    """``张三`` → ``张*``, ``欧阳娜娜`` → ``欧***``: the family name's first character stays."""
    value = name.strip()
    if not value:
        return ""
    return value[0] + "*" * max(len(value) - 1, 1)


def pseudonym(value: str, salt: str) -> str:
    """A salted, keyed hash (HMAC-SHA256, 16 hex chars) so one person joins across events
    (full-width and ASCII writings of one value give the same hash)."""
    if not value:
        return ""
    return hmac.new(
        salt.encode(), fold(value).strip().upper().encode(), hashlib.sha256
    ).hexdigest()[:16]


# --- numbers in free text -------------------------------------------------------------------

_MAX_GAP = 8  # separator characters between two digit groups of one number (an emoji sequence)
_MAX_DIGITS = 19  # a 0086-prefixed landline is the longest number looked for
_DIGIT_GROUP = re.compile(r"[0-9]+")
_MOBILE = re.compile(r"(?:0086|86)?(1[3-9][0-9]{9})")
# area code (10, 2x or three digits from 3) + a local number of 7-8 digits not starting with 0
_NATIONAL = r"(?:10|2[0-9])[1-9][0-9]{7}|[3-9][0-9]{2}[1-9][0-9]{6,7}"
_LANDLINE = re.compile(f"0(?:{_NATIONAL})")
_LANDLINE_INTL = re.compile(f"(?:0086|86)({_NATIONAL})")
# province-level codes of GB/T 2260 (the first two digits of every resident ID number)
_PROVINCES = frozenset((
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83",
))  # fmt: skip


def _is_separator(char: str) -> bool:
    return char != "*" and unicodedata.category(char)[0] in "ZPSCM"


def _plausible_id(digits: str) -> bool:
    """A province code and a real birth date (YYYYMMDD in 18 digits, YYMMDD in 15)."""
    if digits[:2] not in _PROVINCES:
        return False
    year, rest = (
        (int(digits[6:10]), digits[10:14])
        if len(digits) >= 17
        else (1900 + int(digits[6:8]), digits[8:12])
    )
    try:
        born = date(year, int(rest[:2]), int(rest[2:]))
    except ValueError:
        return False
    return 1870 <= born.year <= 2100


def _number_mask(digits: str, *, single: bool, check_x: bool, intl_plus: bool) -> str | None:
    """The mask of a candidate number (its digits, written as one group or several), or None.

    ``check_x``: an X follows the last digit; ``intl_plus``: a ``+`` stands before the digits."""
    mobile = _MOBILE.fullmatch(digits)
    if mobile:
        return mask_phone(mobile.group(1))
    if _LANDLINE.fullmatch(digits):
        return mask_phone(digits)
    intl = _LANDLINE_INTL.fullmatch(digits)
    if intl and (intl_plus or digits.startswith("0086")):
        return mask_phone("0" + intl.group(1))
    if len(digits) == 15 and _plausible_id(digits):
        return mask_id_number(digits)
    if len(digits) == 17 and check_x and (single or _plausible_id(digits)):
        return mask_id_number(digits + "X")
    if len(digits) == 18 and (single or _plausible_id(digits)):
        return mask_id_number(digits)
    return None


def _not_a_number(gaps: list[str], groups: list[str]) -> bool:
    """A decimal number (two groups and a lone dot) or an amount in thousands (1,380,000)."""
    if len(gaps) == 1 and gaps[0] == ".":
        return True
    return bool(gaps) and all(g == "," for g in gaps) and all(len(g) == 3 for g in groups[1:])


def _number_spans(folded: str, *, split_only: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, mask) of every phone or ID number in ``folded`` (already folded text);
    ``split_only``: only those written in more than one group."""
    groups = [(m.start(), m.end(), m.group()) for m in _DIGIT_GROUP.finditer(folded)]
    # gaps[k]: the separators between group k and k + 1, or None when they do not link
    gaps: list[str | None] = []
    for (_, end, _), (start, _, _) in zip(groups, groups[1:], strict=False):
        gap = folded[end:start]
        linked = folded[end] not in "Xx" and len(gap) <= _MAX_GAP  # an X ends a number
        gaps.append(gap if linked and all(_is_separator(c) for c in gap) else None)
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(groups):
        found = None
        digits = ""
        for j in range(i, len(groups)):
            start, end, group = groups[j]
            if j > i and gaps[j - 1] is None:
                break
            digits += group
            if len(digits) > _MAX_DIGITS:
                break
            if len(digits) < 11:
                continue
            check_x = end < len(folded) and folded[end] in "Xx"
            first = groups[i][0]
            plus = first > 0 and folded[first - 1] == "+"
            mask = _number_mask(digits, single=i == j, check_x=check_x, intl_plus=plus)
            between = [g for g in gaps[i:j] if g is not None]
            if (
                (split_only and i == j)
                or mask is None
                or _not_a_number(between, [g[2] for g in groups[i : j + 1]])
            ):
                continue
            left = first - 1 if plus and digits.startswith("86") else first
            if first > 0 and folded[first - 1] == "(" and any(")" in g for g in between):
                left = first - 1
            right = end + 1 if check_x and len(digits) == 17 else end
            while right < len(folded) and unicodedata.category(folded[right]) in ("Mn", "Me"):
                right += 1  # the marks of a keycap digit (1️⃣) belong to the number
            found = (left, right, mask, j)  # the longest number from group i wins
        if found is None:
            i += 1
            continue
        spans.append(found[:3])
        i = found[3] + 1
    return spans


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, mask in spans:
        out.append(text[pos:start])
        out.append(mask)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def scrub_numbers(text: str) -> str:
    """Free text with every phone and ID number masked, however it is written (module doc)."""
    if not text:
        return text
    folded = fold(text)
    if not _DIGIT_GROUP.search(folded):
        return text
    return _replace(text, _number_spans(folded))


# Text that writes characters as escapes: a log line with a bytes or str repr (b'\xef\xbc\x91',
# '\uff11'), a URL with percent-encoding (%EF%BC%91, %20). Each escape, or each run of byte
# escapes that is one UTF-8 character, is read as the character it stands for.
_LOG_ESCAPE = re.compile(r"\\\\|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}")
_URL_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_NOT_A_CHAR = "ÿ"  # a letter: a byte that is no character ends a number


def _utf8_length(lead: int) -> int:
    return 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if lead <= 0xF4 else 1


def _view(text: str, escape: re.Pattern[str]) -> tuple[str, list[int]]:
    """The folded characters ``text`` stands for, and ``bounds``: character k of the view is
    written as ``text[bounds[k]:bounds[k + 1]]``."""
    chars: list[str] = []
    bounds: list[int] = []
    pos = 0
    pending: list[tuple[int, int]] = []  # byte escapes not yet decoded: (byte, start)

    def flush(until: int) -> None:
        k = 0
        while k < len(pending):
            byte, start = pending[k]
            size = _utf8_length(byte) if byte >= 0x80 else 1
            piece = bytes(b for b, _ in pending[k : k + size])
            try:
                char = piece.decode("utf-8") if len(piece) == size else ""
            except UnicodeDecodeError:
                char = ""
            if byte < 0x80:
                char = chr(byte)
            elif not char:
                char, size = _NOT_A_CHAR, 1
            chars.append(_fold_char(char) if char >= "\x80" else char)
            bounds.append(start)
            k += size
        pending.clear()

    for match in escape.finditer(text):
        start, end = match.span()
        if start != pos:
            flush(pos)
            chars.append(fold(text[pos:start]))
            bounds.extend(range(pos, start))
        token = match.group()
        if token[1] == "x" or token[0] == "%":
            pending.append((int(token[-2:], 16), start))
        else:
            flush(start)
            if token == "\\\\":
                chars.append("\\")
            else:
                code = int(token[2:], 16)
                chars.append(_fold_char(chr(code)) if code <= 0x10FFFF else _NOT_A_CHAR)
            bounds.append(start)
        pos = end
    flush(pos)
    chars.append(fold(text[pos:]))
    bounds.extend(range(pos, len(text)))
    bounds.append(len(text))
    return "".join(chars), bounds


def _scrub_view(text: str, escape: re.Pattern[str], *, split_only: bool = False) -> str:
    if not escape.search(text):
        folded, bounds = fold(text), None
    else:
        folded, bounds = _view(text, escape)
    spans = _number_spans(folded, split_only=split_only)
    if bounds is not None:
        spans = [(bounds[s], bounds[e], mask) for s, e, mask in spans]
    return _replace(text, spans)


def scrub_url(url: str) -> str:
    """An image URL with the phone and ID numbers in its path or query masked (also when
    percent-encoded: ``%EF%BC%91`` is a full-width 1, ``%20`` a space)."""
    if not url:
        return url
    return _scrub_view(url, _URL_ESCAPE)


# --- names in free text ---------------------------------------------------------------------

_COMPOUND_SURNAMES = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "司徒", "夏侯",
    "轩辕", "宇文", "长孙", "独孤", "南宫", "西门", "百里", "呼延", "端木", "申屠", "公冶", "澹台",
    "万俟", "闻人", "钟离", "宗政", "濮阳", "太叔", "赫连",
)  # fmt: skip
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马胡朱郭何罗高林郑梁谢唐许冯宋韩邓彭曹曾田肖潘袁董叶杜丁蒋程余"
    "吕魏蔡苏任卢沈姜姚钟崔陆谭汪石付傅贾范金韦夏廖侯白孟邹秦尹江熊薛邱阎闫段雷季史陶毛贺"
    "龙顾郝孔龚邵钱武覃戴严莫黎汤康乔赖施洪辛柯庄樊殷牛葛温倪宁章伍鲁聂盛左祁翟岳褚骆柳梅"
    "童詹鲍焦晏饶麦尤甘卓蒲艾蓝穆霍耿凌邢邬欧郎滕纪舒屈卞应蒙"
)
# characters that rarely stand in a given name: particles, verbs and words of addresses that
# follow a name in a sentence ("我叫张三住在…", "联系人李四电话…")
_NOT_GIVEN = (
    "的了在是住电话手机号码身份证联系反映说和与及跟今昨去到从给被把对于因所也都就还又已要想"
    "请我你他她它们这那没不很让叫称楼栋单元室村组区街路巷镇乡县市省年月日时等处报投诉举申"
    "先女士姐姨傅爷妈叔伯婆"
)
_HONORIFICS = (
    "先生", "女士", "小姐", "同志", "师傅", "老师", "阿姨", "大爷", "大妈", "大娘", "大姐", "大哥",
    "大叔", "奶奶", "爷爷", "叔叔", "伯伯", "婆婆", "老板", "医生", "书记", "主任", "经理",
)  # fmt: skip
# cues after which a family name and a given name are a resident's or a worker's name
_NAME_CUES = (
    "我叫", "我是", "本人", "联系人", "报事人", "反映人", "举报人", "投诉人", "申请人", "当事人",
    "户主", "业主", "住户", "村民", "居民", "网格员", "受理员", "处置员", "工作人员", "志愿者",
    "书记", "主任", "村长", "组长", "楼长",
)  # fmt: skip

_HON = "|".join(_HONORIFICS)
_SURNAME = f"(?:{'|'.join(_COMPOUND_SURNAMES)}|[{_SURNAMES}])"
_GIVEN = f"(?:(?!{_HON})[^\\W{_NOT_GIVEN}\\d_A-Za-z])"
_CJK_GIVEN = f"(?:(?=[\u4e00-\u9fff]){_GIVEN})"
# a "name" followed by one of these is a place (我是王家村的 …), not a person
_NOT_PLACE = "(?![村庄屯寨镇乡街路巷楼栋号组社区店厂])"
# 姓名：赵六, 名字是王小明 (any first character), 我叫张三, 联系人：李四, 网格员王芳
_LABELLED_NAME = re.compile(
    f"(?:姓名|名字)(?:是|叫|为)?[\\s:=]*(?P<name>[\u4e00-\u9fff]{_CJK_GIVEN}{{1,3}}){_NOT_PLACE}"
)
_CUED_NAME = re.compile(
    f"(?:{'|'.join(_NAME_CUES)})(?:是|叫|为)?[\\s:=]*(?P<name>{_SURNAME}{_CJK_GIVEN}{{1,2}}){_NOT_PLACE}"
)
# 张三先生, 王小红女士 (the given name is masked, the family name and honorific stay)
_HONORED_NAME = re.compile(f"(?P<surname>{_SURNAME})(?P<given>{_CJK_GIVEN}{{0,2}}?)(?={_HON})")
# a name in a log line's key-value pair: 'name': '张三', name=张三, "姓名": "张三"
_KEYED_NAME = re.compile(
    r"""(?:name|姓名|联系人)['"]?\s*[:=]\s*['"]?(?P<name>[\u4e00-\u9fff]{2,5})(?![\u4e00-\u9fff])"""
)


def scrub_names(text: str, *, keyed: bool = False) -> str:
    """``text`` with the residents' names it names masked (rules in the module docstring);
    ``keyed`` also masks the value of a ``name``/``姓名`` key (for log lines)."""
    if not text or not re.search("[\u4e00-\u9fff]", text):
        return text
    chars = list(text)
    folded = fold(text)
    patterns = [_LABELLED_NAME, _CUED_NAME, *([_KEYED_NAME] if keyed else [])]
    for pattern in patterns:
        for match in pattern.finditer(folded):
            start, end = match.span("name")
            chars[start + 1 : end] = "*" * (end - start - 1)
    for match in _HONORED_NAME.finditer(folded):
        start, end = match.span("given")
        chars[start:end] = "*" * (end - start)
    return "".join(chars)


def scrub_text(text: str) -> str:
    """Free text with phone numbers, ID numbers and names masked, however they are written
    (rules in the module docstring); the rest of the text stays as written."""
    if not text:
        return text
    return scrub_names(scrub_numbers(text))


# --- log lines ------------------------------------------------------------------------------

# in logs anything that looks like a number is masked, even glued to other characters (a
# library's debug line shows message bytes as b'…\x1613907301234…'): over-masking is safe there
_ID_ANYWHERE = re.compile(r"[0-9]{17}[0-9Xx]")
_PHONE_ANYWHERE = re.compile(r"1[3-9][0-9]{9}")
# the one exception is a digit run that is part of a decimal number (the integer part before
# ".digits" or the fraction after "digits."), e.g. a timer's runtime=1.3818300129998206
_PERSONAL_RUN = re.compile(r"(?:0086|86)?1[3-9][0-9]{9}|[0-9]{17}[0-9Xx]")  # a whole run


# A repr escape (b'\x16', '\u2060', '\U000e0001') ends in hex digits that are not data: in
# b'\x1613907301234' the run to scrub is 13907301234, not 1613907301234 (whose first eleven
# digits would be masked and the phone's last six shown). An escaped backslash is a token of its
# own, so in b'\\x16…' the backslash is data and so are the digits after the x.
_LOG_TOKEN = re.compile(r"\\\\|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|\d+[XxＸｘ]?")


def _in_decimal(text: str, start: int, end: int, escape_end: int = -1) -> bool:
    """True when ``text[start:end]`` stands right after ``digits.`` or right before ``.digits``
    (a hex digit of an escape ending at ``escape_end`` is not a decimal digit)."""
    before = text[max(start - 2, 0) : start]
    after = text[end : end + 2]
    return (
        len(before) == 2 and before[1] == "." and before[0].isdecimal() and escape_end != start - 1
    ) or (len(after) == 2 and after[0] == "." and after[1].isdecimal())


def _scrub_run(text: str, start: int, end: int, escape_end: int = -1) -> str:
    run = fold(text[start:end])
    # A run that is a whole mobile or ID number on its own is masked even next to a dot and
    # digits: 13812345678.5, 0.13812345678 or a list item "1.13812345678" may be a person's
    # number, and a wrongly masked float is harmless where a leaked number is not. Only a run
    # in which such a number is merely embedded (a float's 16-digit fraction) is left alone.
    if _in_decimal(text, start, end, escape_end) and not _PERSONAL_RUN.fullmatch(run):
        return text[start:end]
    if len(run) == 15 and _plausible_id(run):  # an old ID number, not a phone inside it
        return mask_id_number(run)
    masked = _ID_ANYWHERE.sub(lambda m: mask_id_number(m.group()), run)
    masked = _PHONE_ANYWHERE.sub(lambda m: mask_phone(m.group()), masked)
    return text[start:end] if masked == run else masked


def _scrub_glued_runs(text: str) -> str:
    spans: list[tuple[int, int, str]] = []
    escape_end, escape_hex = -1, ""  # the last escape (\xHH, \uHHHH, \UHHHHHHHH) seen
    for token in _LOG_TOKEN.finditer(text):
        start, end = token.span()
        if token.group().startswith("\\"):
            if len(token.group()) > 2:
                escape_end, escape_hex = end, token.group()[2:]
            continue
        masked = _scrub_run(text, start, end, escape_end)
        glued = len(escape_hex) - len(escape_hex.rstrip("0123456789"))
        if masked == token.group() and escape_end == start and glued:
            # Nothing personal once the escape's digits are left out. If this is not a repr
            # after all (a path C:\x13812345678.txt), those digits may be data: scrub them with
            # the run, as before escapes were known, and keep that if it masks anything.
            wider = _scrub_run(text, start - glued, end)
            if wider != text[start - glued : end]:
                start, masked = start - glued, wider
        if masked != text[start:end]:
            spans.append((start, end, masked))
    return _replace(text, spans)


def scrub_log(text: str) -> str:
    """A log line with personal data masked: every ID-number-like and mobile-like digit run,
    even glued to other digits, except inside a decimal number such as ``1.3818300129998206``
    (see ``_scrub_run``; the hex digits of a repr escape such as ``\\x16`` are not part of the
    digit run after it); then every number written as :func:`scrub_text` finds it, also
    through repr escapes (``b'\\xef\\xbc\\x91…'``, ``'\\uff11…'``); then names, as in free
    text and as the value of a ``name`` key."""
    if not text:
        return text
    if re.search(r"\d", text):
        # numbers split into groups first (an ID number 13010220000 1010002 is not the phone
        # 13010220000), then runs with a number glued inside, then whatever is left
        text = _scrub_view(text, _LOG_ESCAPE, split_only=True)
        text = _scrub_view(_scrub_glued_runs(text), _LOG_ESCAPE)
    return scrub_names(text, keyed=True)


class ScrubFilter(logging.Filter):
    """A logging filter that masks personal data in a record (:func:`scrub_log`).

    It formats the message once, scrubs it and stores it as the record's ``msg`` with no
    ``args``; an exception's traceback text and ``stack_info`` are scrubbed too. It never
    drops a record. A record is scrubbed once, however many filters it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "govstream_scrubbed", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        record.msg, record.args = scrub_log(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_log(record.exc_text)
            record.exc_info = None  # the handler prints exc_text, not the raw exception again
        if record.stack_info:
            record.stack_info = scrub_log(record.stack_info)
        record.govstream_scrubbed = True
        return True


_FILTER = ScrubFilter()


class _ScrubbedLogger(logging.Logger):
    """The logger class of loggers created after :func:`install_log_scrubber`: each starts
    with the scrub filter."""

    def __init__(self, name: str, level: int | str = logging.NOTSET) -> None:
        super().__init__(name, level)
        self.addFilter(_FILTER)


def install_log_scrubber() -> None:
    """Mask personal data in every log record of this process, whoever logs it.

    A :class:`ScrubFilter` goes on every logger (a logger's filters see the records created
    through it, not those propagated from its children, so each logger needs one) and on every
    handler of the root and of any logger. Loggers created later get it from the logger class
    (``logging.setLoggerClass``; kept when another class was set). Handlers that the worker
    creates later (Faust's ``setup_logging`` replaces the root's handlers) need none: the record
    was scrubbed by the logger it was created through. Idempotent."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    if logging.getLoggerClass() is logging.Logger:
        logging.setLoggerClass(_ScrubbedLogger)
