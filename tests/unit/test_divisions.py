"""Administrative divisions: real names and links, code rules, roll-ups, lookups."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipelines import divisions
from pipelines.divisions import Division, UnknownDivision
from pipelines.errors import GovstreamError

pytestmark = pytest.mark.unit

SHIPPED = ("430000000000", "440000000000", "610000000000")


def names(divs: list[Division]) -> list[str]:
    return [d.name for d in divs]


def test_example_chain_has_real_names_and_levels() -> None:
    got = divisions.chain("430602001")
    assert [(d.code, d.name, d.level) for d in got] == [
        ("430000000000", "湖南省", "province"),
        ("430600000000", "岳阳市", "city"),
        ("430602000000", "岳阳楼区", "county"),
        ("430602001000", "岳阳楼街道", "township"),
    ]
    assert got[0].parent is None
    assert [d.parent for d in got[1:]] == [d.code for d in got[:-1]]


def test_meixian_is_under_baoji_under_shaanxi() -> None:
    assert names(divisions.chain("610326")) == ["陕西省", "宝鸡市", "眉县"]
    assert divisions.get("610326").parent == divisions.get("6103").code
    assert divisions.get("430800").name == "张家界市"


def test_both_story_provinces_are_shipped_with_thousands_of_villages() -> None:
    assert [d.code for d in divisions.provinces()] == list(SHIPPED)
    for code in SHIPPED:
        assert len(divisions.villages_under(code)) > 8000


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("43", "430000000000"),
        ("4306", "430600000000"),
        ("430600", "430600000000"),
        ("430602001", "430602001000"),
        ("430602001001", "430602001001"),
        (" 610326 ", "610326000000"),
    ],
)
def test_normalize_pads_to_twelve_digits(raw: str, want: str) -> None:
    assert divisions.normalize(raw) == want


@pytest.mark.parametrize(
    "raw",
    ["", "4", "430", "43060", "4306020", "43060200100", "4306020010011", "43a6", "４３", "-43"],
)
def test_normalize_rejects_bad_codes(raw: str) -> None:
    with pytest.raises(UnknownDivision) as info:
        divisions.normalize(raw)
    assert isinstance(info.value, GovstreamError)
    assert info.value.reason == "unknown_region"
    assert not divisions.is_known(raw)


def test_normalize_rejects_non_strings() -> None:
    with pytest.raises(UnknownDivision):
        divisions.normalize(430600)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["99", "439900", "430602999", "430602001999", "11"])
def test_unknown_codes(code: str) -> None:
    assert not divisions.is_known(code)
    assert divisions.chain(code) == []
    assert divisions.children(code) == []
    assert divisions.villages_under(code) == []
    with pytest.raises(UnknownDivision):
        divisions.get(code)


def test_malformed_codes_give_empty_results_not_errors() -> None:
    assert divisions.chain("abc") == []
    assert divisions.children("4") == []
    assert divisions.villages_under("43x") == []
    with pytest.raises(UnknownDivision):
        divisions.get("43x")


def test_known_codes_of_every_length() -> None:
    for code in ("43", "4306", "430602", "430602001", "430602001001"):
        assert divisions.is_known(code)
        assert divisions.get(code).code == divisions.normalize(code)


def test_children_are_one_level_down_and_sorted() -> None:
    cities = divisions.children("43")
    assert len(cities) == 14
    assert "430600000000" in [c.code for c in cities]
    assert all(c.level == "city" and c.parent == "430000000000" for c in cities)
    assert [c.code for c in cities] == sorted(c.code for c in cities)
    towns = divisions.children("430602")
    assert "岳阳楼街道" in names(towns)
    assert divisions.children("430602001001") == []


def test_villages_under_a_village_is_the_village_itself() -> None:
    village = divisions.children("430602001")[0]
    assert divisions.villages_under(village.code) == [village]


def test_villages_under_is_sorted_and_sums_to_the_rolled_up_population() -> None:
    for code in ("43", "61", "430600", "430602", "430602001", "610326", "430800"):
        div = divisions.get(code)
        got = divisions.villages_under(code)
        assert got, code
        assert [v.code for v in got] == sorted(v.code for v in got)
        assert all(v.level == "village" and v.code.startswith(div.prefix) for v in got)
        assert sum(v.population for v in got) == div.population


def test_every_level_is_the_sum_of_its_children() -> None:
    for div in divisions.all_divisions():
        kids = divisions.children(div.code)
        if div.level == "village":
            assert kids == [] and div.population > 0
        else:
            assert kids, f"{div.code} {div.name} has no children"
            assert div.population == sum(k.population for k in kids), div.code


def test_every_parent_exists_one_level_up_and_shares_the_code_prefix() -> None:
    for div in divisions.all_divisions():
        assert len(div.code) == 12 and div.code.isdigit()
        assert div.code == div.prefix.ljust(12, "0")
        if div.level == "province":
            assert div.parent is None
            continue
        assert div.parent is not None
        parent = divisions.get(div.parent)
        up = divisions.LEVELS.index(div.level) - divisions.LEVELS.index(parent.level)
        # one level up; a township of a city without counties (东莞, 中山) skips the county
        assert up == 1 or (div.level == "township" and parent.level == "city"), div
        assert div.code.startswith(parent.prefix)
        assert div.prefix != parent.prefix


def test_every_village_hangs_under_a_township() -> None:
    villages = [d for d in divisions.all_divisions() if d.level == "village"]
    assert len(villages) > 40000
    for v in villages:
        assert v.parent is not None and divisions.get(v.parent).level == "township"


# The code rules of the product spec, restated here on purpose (not imported from the script).
TOWNSHIP_RULE = {"urban": range(1, 100), "town": range(100, 200), "rural": range(200, 400)}
VILLAGE_RULE = {"urban": range(1, 200), "rural": range(200, 400)}


def rule(table: dict[str, range], number: int) -> str | None:
    return next((cls for cls, numbers in table.items() if number in numbers), None)


def test_urban_rural_follows_the_code_rules() -> None:
    seen: Counter[tuple[str, str]] = Counter()
    for div in divisions.all_divisions():
        if div.level == "township":
            want = rule(TOWNSHIP_RULE, int(div.code[6:9]))
        elif div.level == "village":
            want = rule(VILLAGE_RULE, int(div.code[9:12]))
            assert div.urban_rural in ("urban", "rural"), div.code
        else:
            assert div.urban_rural == "", div.code
            continue
        if want is not None:
            assert div.urban_rural == want, (div.code, div.name)
        seen[div.level, div.urban_rural] += 1
    # Each class occurs in the real data, in thousands for the common ones.
    assert seen["township", "urban"] > 500 and seen["township", "town"] > 1000
    assert seen["township", "rural"] > 100 and seen["village", "rural"] > 30000
    assert seen["village", "urban"] > 5000


# Real data: one unit coded in the 街道 range is an industrial-park area (益阳市).
STREET_CODED_NOT_STREETS = {"430972006000": "东部产业园地区"}


def test_names_match_the_township_class() -> None:
    odd = {}
    for div in divisions.all_divisions():
        if div.level != "township" or not div.urban_rural:
            continue
        suffix = {"urban": "街道", "town": "镇", "rural": "乡"}[div.urban_rural]
        if suffix not in div.name and not (suffix == "街道" and "办事处" in div.name):
            odd[div.code] = div.name
    assert odd == STREET_CODED_NOT_STREETS


def test_lookups_return_copies() -> None:
    got = divisions.villages_under("430602001")
    got.clear()
    assert divisions.villages_under("430602001")
    kids = divisions.children("43")
    kids.clear()
    assert len(divisions.children("43")) == 14


def test_every_chain_ends_at_a_province_without_cycles() -> None:
    for division in divisions.all_divisions():
        chain = divisions.chain(division.code)
        assert chain[0].level == "province" and chain[-1] == division
        assert len({d.code for d in chain}) == len(chain) <= 5


def test_a_city_without_counties_has_townships_directly_below_it() -> None:
    dongguan = divisions.get("441900")
    assert dongguan.level == "city" and dongguan.name == "东莞市"
    township = divisions.children("441900")[0]
    assert township.level == "township"
    assert [d.level for d in divisions.chain(township.code)] == ["province", "city", "township"]


# --- withdrawn codes (issue 13, item 9) --------------------------------------------------------


def test_withdrawn_codes_are_gone_and_their_successors_are_current() -> None:
    gone = divisions.withdrawn()
    assert {c[:6] for c in gone if c.startswith("43")} >= {"430122", "430124"}
    ningxiang = gone["430124000000"]
    assert (ningxiang.name, ningxiang.successors, ningxiang.year) == (
        "宁乡县",
        ("430182000000",),
        2017,
    )
    assert divisions.get("430182").name == "宁乡市"
    assert gone["430122000000"].successors == ("430112000000",)  # 望城县 → 望城区, 2011
    for entry in gone.values():
        assert not divisions.is_known(entry.code), entry
        assert entry.successors and all(divisions.is_known(c) for c in entry.successors)
        assert entry.code[:2] == entry.successors[0][:2]  # no change crosses a province
        assert entry.year is None or 1990 <= entry.year <= 2023  # the data is NBS 2023


def test_resolve_maps_withdrawn_keeps_known_and_reports_unknown() -> None:
    got = divisions.resolve(["430124", "430181", " 430124 ", "439999", "4306021", 43, "430182"])
    assert got.codes == ("430182", "430181")
    assert got.replaced == {"430124": ("430182",)}
    assert got.unknown == ("439999", "4306021", "43")
    assert divisions.resolve(["430124000000"]).codes == ("430182",)  # 12-digit form too
    assert divisions.resolve([]) == divisions.Resolution()
    # a township code under the withdrawn county is not guessed at
    assert divisions.resolve(["430124101"]).unknown == ("430124101",)


def _withdrawn_file(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "withdrawn.csv"
    path.write_text(
        "# test\ncode,name,successors,successor_names,year,change\n" + row + "\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "row",
    [
        "430181,浏阳市,430182,宁乡市,2017,x",  # still a current division
        "430124,宁乡县,430182,宁乡县,2017,x",  # successor named otherwise
        "430124,宁乡县,439999,某市,2017,x",  # successor unknown
        "430124,宁乡县,430182,宁乡市,17,x",  # not a year
        "430124,宁乡县,430182",  # too few columns
    ],
)
def test_a_wrong_withdrawn_row_is_a_data_error(tmp_path: Path, row: str) -> None:
    with pytest.raises(divisions.DivisionDataError):
        divisions.withdrawn(_withdrawn_file(tmp_path, row))
