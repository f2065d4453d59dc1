"""ID number check digits and masking of personal data."""

from __future__ import annotations

import logging
import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.pii import (
    ScrubFilter,
    fold,
    id_check_char,
    id_number_problem,
    install_log_scrubber,
    is_mobile,
    mask_id_number,
    mask_name,
    mask_phone,
    pseudonym,
    scrub_log,
    scrub_names,
    scrub_text,
    scrub_url,
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


# --- every way a number is written (issues 13 item 6, 15 item 5) ------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # full width, ideographic spaces, full-width hyphens and X
        ("电话１３９０７３０５６７８", "电话139****5678"),
        ("电话：１３９　０７３０　５６７８。", "电话：139****5678。"),
        ("139－0730－5678", "139****5678"),
        ("身份证号４３０６０２１９８５０３１２４０２Ｘ", "身份证号430602********402X"),
        ("身份证４３０６０２１９８５０３１２４０２ｘ号", "身份证430602********402X号"),
        # prefixes
        ("0086 13907305678", "139****5678"),
        ("0086-139-0730-5678", "139****5678"),
        ("86 139 0730 5678", "139****5678"),
        ("８６１３９０７３０５６７８", "139****5678"),
        ("＋８６ １３９０７３０５６７８", "139****5678"),
        # separators: dots, emoji, other symbols, keycaps
        ("138.1234.5678", "138****5678"),
        ("138😀1234😀5678", "138****5678"),
        ("138👍🏻1234👨‍👩‍👧5678", "138****5678"),
        ("138~1234~5678", "138****5678"),
        ("138/1234/5678", "138****5678"),
        ("1️⃣3️⃣8️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣8️⃣好", "138****5678好"),
        # landlines
        ("座机0730-1234567", "座机073****4567"),
        ("(0730)1234567", "073****4567"),
        ("（０７３０）１２３４５６７", "073****4567"),
        ("073012345678", "073*****5678"),
        ("010-12345678", "010****5678"),
        ("0731 8888 8888", "073*****8888"),
        ("+86 730 1234567", "073****4567"),
        ("0086 10 12345678", "010****5678"),
        # ID numbers with spaces or glued to letters, the old 15-digit form
        ("sfz430602198503124024", "sfz430602********4024"),
        ("身份证号430602198503124024", "身份证号430602********4024"),
        ("430602 19850312 4024", "430602********4024"),
        ("4306 0219 8503 1240 2x", "430602********402X"),
        ("130102 1985 0312 4024", "130102********4024"),
        ("老身份证430602850312402号", "老身份证430602*****2402号"),
        ("430602-850312-402", "430602*****2402"),
        ("tel13812345678", "tel138****5678"),
        # not personal numbers: left as written
        ("时间2024-05-12 13:45:30", "时间2024-05-12 13:45:30"),
        ("金额13,800,000,000元", "金额13,800,000,000元"),
        ("面积13.812345678平方米", "面积13.812345678平方米"),
        ("编号2026112500001234567不是电话", "编号2026112500001234567不是电话"),
        ("订单201912345678901", "订单201912345678901"),  # 15 digits, no province + birth date
        ("第１２３号", "第１２３号"),
    ],
)
def test_scrub_text_masks_every_writing(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我叫张三", "我叫张*"),
        ("我叫张三住在5栋", "我叫张*住在5栋"),
        ("本人李四反映路灯坏了", "本人李*反映路灯坏了"),
        ("姓名：赵六", "姓名：赵*"),
        ("姓名 赵六，电话13812345678", "姓名 赵*，电话138****5678"),
        ("名字是小明", "名字是小*"),
        ("联系人：王小明 13812345678", "联系人：王** 138****5678"),
        ("我是欧阳娜娜", "我是欧***"),
        ("网格员王芳已处理", "网格员王*已处理"),
        ("张三先生家门口", "张*先生家门口"),
        ("王小红女士", "王**女士"),
        ("欧阳娜娜女士", "欧阳**女士"),
        # a family name alone before an honorific names nobody: kept (module docstring)
        ("张先生说路灯坏了", "张先生说路灯坏了"),
        ("王女士", "王女士"),
        ("联系人：王女士", "联系人：王女士"),
        ("先生您好", "先生您好"),
        # no name after the cue
        ("我叫了救护车", "我叫了救护车"),
        ("我是王家村的", "我是王家村的"),
        ("本人向社区反映", "本人向社区反映"),
        ("本人住在3栋", "本人住在3栋"),
    ],
)
def test_scrub_text_masks_names_after_a_cue(text: str, expected: str) -> None:
    assert scrub_text(text) == expected
    assert scrub_names(text) == expected or any(c.isdigit() for c in text)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://img.example.gov.cn/r/13812345678/1.jpg", "https://img.example.gov.cn/r/138****5678/1.jpg"),
        ("https://img.example.gov.cn/u?id=430602198503124024&n=1",
         "https://img.example.gov.cn/u?id=430602********4024&n=1"),
        ("https://x.cn/p/138%201234%205678.jpg", "https://x.cn/p/138****5678.jpg"),
        ("https://x.cn/p/%EF%BC%91%EF%BC%93%EF%BC%98%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94"
         "%EF%BC%95%EF%BC%96%EF%BC%97%EF%BC%98.jpg", "https://x.cn/p/138****5678.jpg"),
        ("https://x.cn/tel_8613812345678.png", "https://x.cn/tel_138****5678.png"),
        # report ids (UUIDs), timestamps and sizes stay
        ("https://img.example.gov.cn/r/550e8400-e29b-41d4-a716-446655440000/1.jpg",
         "https://img.example.gov.cn/r/550e8400-e29b-41d4-a716-446655440000/1.jpg"),
        ("https://x.cn/p/1718000000000_800x600.jpg", "https://x.cn/p/1718000000000_800x600.jpg"),
    ],
)  # fmt: skip
def test_scrub_url_masks_numbers_in_image_urls(url: str, expected: str) -> None:
    assert scrub_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a bytes repr of UTF-8 full-width digits, and a str repr with \u escapes
        ("value=b'" + "".join(f"\\xef\\xbc\\x{0x90 + int(d):02x}" for d in "13812345678") + "'",
         "value=b'138****5678'"),
        ("'\\uff11\\uff13\\uff18\\u3000\\uff11\\uff12\\uff13\\uff14\\u3000\\uff15\\uff16\\uff17"
         "\\uff18'", "'138****5678'"),
        ("{'name': '张三', 'phone': '138 1234 5678'}", "{'name': '张*', 'phone': '138****5678'}"),
        ("description='联系人：王小明 0730-1234567'", "description='联系人：王** 073****4567'"),
        ("id=４３０６０２１９８５０３１２４０２Ｘ", "id=430602********402X"),
        ("phone=0086.139.0730.5678", "phone=139****5678"),
        # decimal numbers and repr escapes stay
        ("took 13.812345678s", "took 13.812345678s"),
        ("b'\\x12\\x34\\x00'", "b'\\x12\\x34\\x00'"),
    ],
)  # fmt: skip
def test_log_scrubber_covers_the_same_writings(text: str, expected: str) -> None:
    assert scrub_log(text) == expected


def test_masks_fold_full_width() -> None:
    assert mask_phone("１３９０７３０５６７８") == "139****5678"
    assert mask_phone("0086 139 0730 5678") == "139****5678"
    assert is_mobile("0086-13907305678") and is_mobile("１３９０７３０５６７８")
    assert mask_id_number("１１０１０５１９４９１２３１００２Ｘ") == "110105********002X"
    assert id_number_problem("１１０１０５１９４９１２３１００２ｘ") is None
    assert pseudonym("ＡＢ１２", "s") == pseudonym("ab12", "s")
    assert fold("电话：１３９　０７３０－５６７８Ｘ") == "电话:139 0730-5678X"
    assert fold("٣٤") == "34"


def test_log_filter_scrubs_a_logger_made_after_install_and_tracebacks() -> None:
    install_log_scrubber()
    name = "govstream.test.new-logger-after-install"
    assert logging.getLogger(name).filters  # the logger class gives it the filter
    assert _logged(name, logging.WARNING, "from %s", "我叫张三 13812345678") == (
        "from 我叫张* 138****5678"
    )
    lines = _Lines()
    lines.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(lines)
    try:
        try:
            raise ValueError("bad id 430602198503124024")
        except ValueError:
            logging.getLogger("govstream.test.child").exception("failed for %s", "13812345678")
    finally:
        logging.getLogger().removeHandler(lines)
    (text,) = lines.lines
    assert "13812345678" not in text and "430602198503124024" not in text
    assert "failed for 138****5678" in text and "430602********4024" in text


def test_log_filter_keeps_every_record() -> None:
    filter_ = ScrubFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d%%", (5,), None)
    assert filter_.filter(record) and record.getMessage() == "5%"
    assert filter_.filter(record) and record.getMessage() == "5%"  # scrubbed once
    bad = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert filter_.filter(bad)  # a bad format string is the handler's to report


# --- properties --------------------------------------------------------------------------

CONTEXT = st.text(alphabet="路灯坏了请处理谢谢，。！？ 电话联系我家门口井盖：", max_size=12)
SEPARATORS = [" ", "\u3000", "-", "－", "😀", "👍🏻", "·", "、", "/", "~", "_", "\u200b"]


@st.composite
def _written(draw: st.DrawFn, number: str, tail: str = "") -> str:
    """``number`` (+ ``tail``, the check character) as a resident may type it: split into
    groups by separators, each digit ASCII or full width."""
    cuts = sorted(draw(st.sets(st.integers(1, len(number) - 1), max_size=4)))
    parts = [number[a:b] for a, b in zip([0, *cuts], [*cuts, len(number)], strict=True)]
    if len(parts) == 2:  # two groups and a lone dot is a decimal number (module docstring)
        seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=1))
    else:
        seps = draw(st.lists(st.sampled_from([*SEPARATORS, "."]), min_size=len(parts) - 1,
                             max_size=len(parts) - 1))  # fmt: skip
    text = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True)) + tail
    wide = draw(st.booleans())
    return "".join(chr(ord(c) + 0xFEE0) if wide and c.isascii() and c.isalnum() else c
                   for c in text)  # fmt: skip


def _visible(text: str) -> str:
    return re.sub(r"[^0-9X]", "", fold(text).upper())


@given(
    st.from_regex(r"\A1[3-9][0-9]{9}\Z"),
    st.sampled_from(["", "+86", "+86 ", "0086", "0086-", "86 ", "86"]),
    st.data(),
    CONTEXT,
    CONTEXT,
)
@settings(max_examples=300, deadline=None)
def test_any_written_mobile_shows_only_its_first_3_and_last_4(
    phone: str, prefix: str, data: st.DataObject, before: str, after: str
) -> None:
    written = data.draw(_written(phone))
    out = scrub_text(before + prefix + written + after)
    assert _visible(out) == phone[:3] + phone[-4:]
    assert scrub_text(out) == out  # idempotent: a mask is not masked again


@given(
    st.sampled_from(["430602", "110105", "130102", "440305", "650102"]),
    st.dates(date(1930, 1, 1), date(2020, 12, 31)),
    st.from_regex(r"\A[0-9]{3}\Z"),
    st.booleans(),
    st.data(),
    CONTEXT,
    CONTEXT,
)
@settings(max_examples=300, deadline=None)
def test_any_written_id_number_shows_only_its_first_6_and_last_4(
    area: str, born: date, sequence: str, old: bool, data: st.DataObject, before: str, after: str
) -> None:
    if old:  # GB 11643-1989: 15 digits, YYMMDD
        number = area + born.strftime("%y%m%d") + sequence
        written = data.draw(_written(number))
    else:
        first17 = area + born.strftime("%Y%m%d") + sequence
        number = first17 + id_check_char(first17)
        if number.endswith("X"):
            written = data.draw(_written(first17, data.draw(st.sampled_from(["X", "x"]))))
        else:
            written = data.draw(_written(number))
    out = scrub_text(before + written + after)
    assert _visible(out) == number[:6] + number[-4:]
    assert scrub_log(before + written + after).count("*") >= 5


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_scrubbing_any_text_is_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once
    assert scrub_log(scrub_log(text)) == scrub_log(text)
