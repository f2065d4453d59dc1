"""ID number check digits and masking of personal data."""

from __future__ import annotations

import logging

import pytest

from pipelines.pii import (
    id_check_char,
    id_number_problem,
    install_log_scrubber,
    is_mobile,
    mask_id_number,
    mask_name,
    mask_phone,
    pseudonym,
    scrub_log,
    scrub_text,
)

pytestmark = pytest.mark.unit

# GB 11643's own worked example: 11010519491231002X
VALID = "11010519491231002X"


def test_check_character_of_the_standard_example() -> None:
    assert id_check_char(VALID[:17]) == "X"
    assert id_number_problem(VALID) is None
    assert id_number_problem(VALID.lower()) is None


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("110105194912310021", "check character is 1, expected X"),
        ("11010519491331002X", "not a date"),
        ("1101051949123100", "not 17 digits"),
        ("11010519491231002Y", "not 17 digits"),
    ],
)
def test_invalid_numbers_say_why(number: str, fragment: str) -> None:
    problem = id_number_problem(number)
    assert problem is not None and fragment in problem


def test_masks() -> None:
    assert mask_phone("13812341234") == "138****1234"
    assert mask_phone("+86 138-1234-1234") == "138****1234"
    assert mask_id_number(VALID) == "110105********002X"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("李") == "李*"
    assert mask_name("") == ""


def test_masked_values_do_not_contain_the_hidden_part() -> None:
    assert "1234" not in mask_phone("13812345678")[:7]
    assert "19491231" not in mask_id_number(VALID)


def test_mobile_numbers() -> None:
    assert is_mobile("13812341234") and is_mobile("+8613812341234")
    assert not is_mobile("12812341234") and not is_mobile("0731-8888888")


def test_pseudonym_is_stable_salted_and_not_the_value() -> None:
    a = pseudonym(VALID, "salt-a")
    assert a == pseudonym(VALID.lower(), "salt-a")
    assert a != pseudonym(VALID, "salt-b")
    assert VALID not in a and len(a) == 16
    assert pseudonym("", "salt-a") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("路灯坏了，联系我13812345678谢谢", "路灯坏了，联系我138****5678谢谢"),
        ("电话 138 1234 5678，或+86-13912345678", "电话 138****5678，或139****5678"),
        ("身份证11010519491231002X的老人", "身份证110105********002X的老人"),
        ("编号2026112500001234567不是电话", "编号2026112500001234567不是电话"),
        ("", ""),
    ],
)
def test_scrub_text_masks_numbers_written_in_free_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


RAW_BYTES = b"\x1613907301234\x02$430602198503124024"


class _Lines(logging.Handler):
    """A handler that keeps the formatted lines it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _logged(name: str, level: int, msg: str, *args: object) -> str:
    """What a handler on the root logger receives when ``name`` logs ``msg % args``."""
    install_log_scrubber()
    lines = _Lines()
    root = logging.getLogger()
    root.addHandler(lines)  # a handler added after install_log_scrubber, as Faust's worker does
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.log(level, msg, *args)
    finally:
        logger.setLevel(previous)
        root.removeHandler(lines)
    assert len(lines.lines) == 1
    return lines.lines[0]


def test_log_scrubber_masks_numbers_inside_bytes_reprs() -> None:
    install_log_scrubber()
    install_log_scrubber()  # idempotent
    text = _logged("aiokafka", logging.DEBUG, "value=%r", RAW_BYTES)
    assert "13907301234" not in text and "430602198503124024" not in text
    assert "430602********4024" in text and "****" in text.split("$")[0]


@pytest.mark.parametrize(
    "text",
    [
        "mode timer runtime=1.3818300129998206",
        "took 1.3818300129998206e-05s",
        "elapsed=0.00013812345678901234",
        '{"runtime": 1.3818300129998206, "lag": 213812345678.25}',
        "p99 1.4306021985031240245 s",
    ],
)
def test_log_scrubber_leaves_decimal_numbers_alone(text: str) -> None:
    assert scrub_log(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("联系我13812345678谢谢", "联系我138****5678谢谢"),
        ("phone=13812345678 id:11010519491231002X", "phone=138****5678 id:110105********002X"),
        (
            '{"phone": "13812345678", "id": "430602198503124024"}',
            '{"phone": "138****5678", "id": "430602********4024"}',
        ),
        ("value=b'\\x0213812345678\\x00'", "value=b'\\x02138****5678\\x00'"),
        ("电话13812345678。", "电话138****5678。"),
        ("call 13812345678. Then", "call 138****5678. Then"),
        ("runtime=1.38 phone=13812345678", "runtime=1.38 phone=138****5678"),
        # a whole mobile or ID number next to a dot and digits is ambiguous: masked
        ("13812345678.5", "138****5678.5"),
        ("8613812345678.5", "86138****5678.5"),
        ("0.13812345678", "0.138****5678"),
        ("1.13812345678 2.13912345678", "1.138****5678 2.139****5678"),
        ("id=430602198503124024.5", "id=430602********4024.5"),
        ("1.11010519491231002X", "1.110105********002X"),
    ],
)
def test_log_scrubber_masks_numbers_wherever_they_stand(text: str, expected: str) -> None:
    assert scrub_log(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the "16" belongs to the escape: the phone is masked as a bare 13907301234 would be
        ("b'\\x1613907301234'", "b'\\x16139****1234'"),
        ("b'\\x1613907301234\\x02'", "b'\\x16139****1234\\x02'"),
        ("b'\\x01430602198503124024'", "b'\\x01430602********4024'"),
        ("b'\\x9911010519491231002X'", "b'\\x99110105********002X'"),
        ("'\\u2060430602198503124024'", "'\\u2060430602********4024'"),
        ("'\\U000e000113907301234'", "'\\U000e0001139****1234'"),
        # after an escape and a dot the run is not a fraction: the "2." is no decimal number
        ("b'\\x12.3813812345678'", "b'\\x12.38138****5678'"),
        # an escaped backslash: the x and the digits after it are data, scrubbed as a plain run
        ("b'\\\\x13812345678'", "b'\\\\x138****5678'"),
        # not a repr (or b'\x13' + 812345678): in doubt the escape's digits are scrubbed too
        ("C:\\logs\\x13812345678.txt", "C:\\logs\\x138****5678.txt"),
    ],
)
def test_log_scrubber_skips_the_hex_digits_of_escapes(text: str, expected: str) -> None:
    assert scrub_log(text) == expected


@pytest.mark.parametrize("text", ["b'\\x12\\x34'", "b'\\x12\\x34\\x99\\x00'", "'\\u2060\\x13'"])
def test_log_scrubber_leaves_escapes_alone(text: str) -> None:
    assert scrub_log(text) == text


def test_log_scrubber_masks_a_phone_after_an_escape_in_a_record() -> None:
    text = _logged("aiokafka", logging.DEBUG, "value=%r", b"\x1613907301234")
    assert text == "value=b'\\x16139****1234'"


def test_log_scrubber_keeps_a_float_argument_of_a_record() -> None:
    runtime = 1.3818300129998206
    text = _logged(
        "govstream.modes", logging.INFO, "mode timer runtime=%s phone=%s", runtime, "13812345678"
    )
    assert text == f"mode timer runtime={runtime} phone=138****5678"
