"""Personal data: resident ID number check (GB 11643) and masking before data leaves an agent.

Raw phone numbers, ID numbers and names never reach ClickHouse, the dead-letter table or logs:
they are masked (``138****1234``, first 6 + last 4 of an ID number, ``张*``) and a salted hash
is kept where analysts need to join the same person across events.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import date
from typing import Any

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
_PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_number_problem(number: str) -> str | None:
    """Why an 18-character resident ID number is invalid, or None when it is valid."""
    value = number.strip().upper()
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
    """True for an 11-digit mainland mobile number (optionally +86 / 86 prefixed)."""
    return bool(_PHONE_RE.match(_digits_of_phone(phone)))


def _digits_of_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def mask_phone(phone: str) -> str:
    """``13812341234`` → ``138****1234``; anything else keeps at most its last 4 digits."""
    digits = _digits_of_phone(phone)
    if len(digits) >= 7:
        return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
    return "*" * len(digits)


def mask_id_number(number: str) -> str:
    """First 6 (the area) and last 4 characters; the birth date and sequence are hidden."""
    value = number.strip().upper()
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
    """A salted, keyed hash (HMAC-SHA256, 16 hex chars) so one person joins across events."""
    if not value:
        return ""
    return hmac.new(salt.encode(), value.strip().upper().encode(), hashlib.sha256).hexdigest()[:16]


# an ID number or a mobile number written inside free text (descriptions, addresses, notes),
# not glued to other digits; a mobile may be written with spaces or dashes (138 1234 5678)
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d){8}(?!\d)")


def scrub_text(text: str) -> str:
    """Free text with ID and mobile numbers masked (residents type them into descriptions)."""
    if not text:
        return text
    text = _ID_IN_TEXT.sub(lambda m: mask_id_number(m.group()), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), text)


# in logs anything that looks like a number is masked, even glued to other characters (a
# library's debug line shows message bytes as b'…\x1613907301234…'): over-masking is safe there
_ID_ANYWHERE = re.compile(r"\d{17}[\dXx]")
_PHONE_ANYWHERE = re.compile(r"1[3-9]\d{9}")
# the one exception is a digit run that is part of a decimal number (the integer part before
# ".digits" or the fraction after "digits."), e.g. a timer's runtime=1.3818300129998206
_PERSONAL_RUN = re.compile(r"(?:0086|86)?1[3-9]\d{9}|\d{17}[\dXx]")  # a whole run, on its own


# A repr escape (b'\x16', '\u2060', '\U000e0001') ends in hex digits that are not data: in
# b'\x1613907301234' the run to scrub is 13907301234, not 1613907301234 (whose first eleven
# digits would be masked and the phone's last six shown). An escaped backslash is a token of its
# own, so in b'\\x16…' the backslash is data and so are the digits after the x.
_LOG_TOKEN = re.compile(r"\\\\|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|\d+[Xx]?")


def _in_decimal(text: str, start: int, end: int, escape_end: int = -1) -> bool:
    """True when ``text[start:end]`` stands right after ``digits.`` or right before ``.digits``
    (a hex digit of an escape ending at ``escape_end`` is not a decimal digit)."""
    before = text[max(start - 2, 0) : start]
    after = text[end : end + 2]
    return (
        len(before) == 2 and before[1] == "." and before[0].isdecimal() and escape_end != start - 1
    ) or (len(after) == 2 and after[0] == "." and after[1].isdecimal())


def _scrub_run(text: str, start: int, end: int, escape_end: int = -1) -> str:
    run = text[start:end]
    # A run that is a whole mobile or ID number on its own is masked even next to a dot and
    # digits: 13812345678.5, 0.13812345678 or a list item "1.13812345678" may be a person's
    # number, and a wrongly masked float is harmless where a leaked number is not. Only a run
    # in which such a number is merely embedded (a float's 16-digit fraction) is left alone.
    if _in_decimal(text, start, end, escape_end) and not _PERSONAL_RUN.fullmatch(run):
        return run
    run = _ID_ANYWHERE.sub(lambda m: mask_id_number(m.group()), run)
    return _PHONE_ANYWHERE.sub(lambda m: mask_phone(m.group()), run)


def scrub_log(text: str) -> str:
    """A log line with every ID-number-like and mobile-like digit run masked, except inside
    a decimal number such as ``1.3818300129998206`` (see ``_scrub_run``); the hex digits of a
    repr escape such as ``\\x16`` are not part of the digit run after it."""
    out: list[str] = []
    pos = 0
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
        out.append(text[pos:start])
        out.append(masked)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def install_log_scrubber() -> None:
    """Mask personal numbers in every log record of this process, whoever logs it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "govstream_scrubber", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        unscrubbed = record.getMessage
        record.getMessage = lambda: scrub_log(unscrubbed())  # type: ignore[method-assign]
        return record

    factory.govstream_scrubber = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
