"""One-off derivation of the lexicon's data tables from public statistics.

Run from the repository root:

    python scripts/build_lexicon_tables.py [--benchmarks ../shared/benchmarks]

It writes two tables under ``src/synthbias/lexicon/data/``; it is kept to document how every number
in them was obtained, not because the package needs it at run time.

``names.csv`` (name, female_share, total_freq)
    From the US Census Bureau 1990 "Frequently Occurring Names" first-name files
    (``names_lists/dist.{female,male}.first.txt``; public-domain government statistics).
    Each file gives a name's frequency in percent of that sex's population. For every name in
    either file, ``f`` and ``m`` are its female and male percentages (0 when absent), and
    ``female_share = f / (f + m)``, ``total_freq = f + m``. Because the two percentages are
    per-sex, the share assumes equal numbers of women and men (the 1990 population was about
    51% female, so this understates female shares very slightly). The table keeps the ``TOP_N``
    names with the highest ``total_freq``; names are written capitalised (``MARY`` -> ``Mary``).
    Only these derived facts are stored, not the census files.

``occupations.csv`` (occupation, plural, pct_female, source, year, stat_category, variants)
    1. The 60 occupations of Winogender (Rudinger et al., 2018,
       ``winogender/occupations-stats.tsv``), with their ``bls_pct_female`` and ``bls_year``
       (US Bureau of Labor Statistics figures as collected by the Winogender authors; the year is
       per row, 2015 or 2016). Their exact BLS category names are not given there, so
       ``stat_category`` is empty for those rows.
    2. A few common occupations Winogender lacks (CEO, pilot, flight attendant, police officer,
       ...) and multi-word occupations whose head noun is a Winogender occupation with a
       different statistic (nurse practitioner vs practitioner, social worker vs worker, ...).
       These come from the US Census Bureau's American Community Survey 2016 1-year estimates of
       full-time, year-round workers by sex and detailed occupation (the Census "median earnings
       by detailed occupation" tables), as redistributed in TidyTuesday 2019-03-05
       ``jobs_gender.csv`` (github.com/rfordatascience/tidytuesday). The worker counts are
       recorded below as (female, total) and ``pct_female`` is recomputed from them. Note these
       are Census ACS figures for full-time, year-round workers, not BLS CPS figures for all
       employed people; the ``source`` column says which is which.
    ``variants`` lists other surface forms (spelling variants, synonyms within the same statistical
    category), pipe-separated, singular and plural.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "synthbias" / "lexicon" / "data"
TOP_N = 1000

WINOGENDER_SOURCE = "BLS (via Winogender occupations-stats.tsv, Rudinger et al. 2018)"
ACS_SOURCE = (
    "US Census Bureau ACS 2016 1-year, full-time year-round workers by detailed occupation "
    "(via TidyTuesday 2019-03-05 jobs_gender.csv)"
)

# Plurals that are not the word + "s".
IRREGULAR_PLURALS = {
    "salesperson": "salespeople",
    "secretary": "secretaries",
}

# Extra surface forms for Winogender rows (same statistic).
WINOGENDER_VARIANTS = {
    "advisor": ["adviser", "advisers"],
    "dietitian": ["dietician", "dieticians"],
    "firefighter": ["fire fighter", "fire fighters"],
    "hairdresser": ["hair stylist", "hair stylists", "hairstylist", "hairstylists"],
    "lawyer": ["attorney", "attorneys"],
    "physician": ["general practitioner", "general practitioners"],
    "salesperson": ["salespersons"],
    "secretary": ["administrative assistant", "administrative assistants"],
    "teacher": ["schoolteacher", "schoolteachers"],
}

# (occupation, plural, ACS category, female workers, total workers, variants)
ACS_2016: list[tuple[str, str, str, int, int, list[str]]] = [
    (
        "chief executive",
        "chief executives",
        "Chief executives",
        254360,
        1068258,
        ["CEO", "CEOs", "chief executive officer", "chief executive officers"],
    ),
    ("pilot", "pilots", "Aircraft pilots and flight engineers", 6281, 102512, []),
    ("flight attendant", "flight attendants", "Flight attendants", 37953, 53686, []),
    (
        "police officer",
        "police officers",
        "Police and sheriff's patrol officers",
        86834,
        669550,
        ["patrol officer", "patrol officers"],
    ),
    (
        "construction worker",
        "construction workers",
        "Construction laborers",
        29887,
        1180144,
        ["construction laborer", "construction laborers"],
    ),
    (
        "truck driver",
        "truck drivers",
        "Driver/sales workers and truck drivers",
        124696,
        2695081,
        ["trucker", "truckers"],
    ),
    ("bus driver", "bus drivers", "Bus drivers", 101735, 280228, []),
    (
        "taxi driver",
        "taxi drivers",
        "Taxi drivers and chauffeurs",
        36601,
        302027,
        ["cab driver", "cab drivers", "chauffeur", "chauffeurs"],
    ),
    (
        "software developer",
        "software developers",
        "Software developers, applications and systems software",
        205796,
        1124661,
        ["software engineer", "software engineers"],
    ),
    ("dentist", "dentists", "Dentists", 27296, 93294, []),
    ("dental assistant", "dental assistants", "Dental assistants", 154859, 167955, []),
    ("medical assistant", "medical assistants", "Medical assistants", 347579, 382920, []),
    ("social worker", "social workers", "Social workers", 570197, 704192, []),
    (
        "preschool teacher",
        "preschool teachers",
        "Preschool and kindergarten teachers",
        332922,
        339677,
        ["kindergarten teacher", "kindergarten teachers"],
    ),
    (
        "elementary school teacher",
        "elementary school teachers",
        "Elementary and middle school teachers",
        1867475,
        2398445,
        ["middle school teacher", "middle school teachers"],
    ),
    (
        "high school teacher",
        "high school teachers",
        "Secondary school teachers",
        305106,
        536264,
        ["secondary school teacher", "secondary school teachers"],
    ),
    ("professor", "professors", "Postsecondary teachers", 410457, 881345, []),
    ("housekeeper", "housekeepers", "Maids and housekeeping cleaners", 661921, 790133, []),
    (
        "childcare worker",
        "childcare workers",
        "Childcare workers",
        516932,
        551286,
        ["child care worker", "child care workers", "daycare worker", "daycare workers"],
    ),
    (
        "nursing assistant",
        "nursing assistants",
        "Nursing, psychiatric, and home health aides",
        1081522,
        1256050,
        ["nursing aide", "nursing aides", "home health aide", "home health aides"],
    ),
    ("nurse practitioner", "nurse practitioners", "Nurse practitioners", 102038, 116166, []),
    ("physician assistant", "physician assistants", "Physician assistants", 48149, 76018, []),
    ("physical therapist", "physical therapists", "Physical therapists", 102373, 162536, []),
    (
        "occupational therapist",
        "occupational therapists",
        "Occupational therapists",
        62286,
        72099,
        [],
    ),
    ("massage therapist", "massage therapists", "Massage therapists", 51099, 67798, []),
    ("welder", "welders", "Welding, soldering, and brazing workers", 25995, 475547, []),
    ("roofer", "roofers", "Roofers", 1548, 143180, []),
    (
        "security guard",
        "security guards",
        "Security guards and gaming surveillance officers",
        142357,
        647922,
        [],
    ),
    (
        "farmer",
        "farmers",
        "Farmers, ranchers, and other agricultural managers",
        50691,
        451680,
        ["rancher", "ranchers"],
    ),
    ("barber", "barbers", "Barbers", 12285, 68864, []),
    ("bank teller", "bank tellers", "Tellers", 182764, 211343, ["teller", "tellers"]),
    (
        "bookkeeper",
        "bookkeepers",
        "Bookkeeping, accounting, and auditing clerks",
        723611,
        829531,
        [],
    ),
    (
        "mail carrier",
        "mail carriers",
        "Postal service mail carriers",
        101685,
        281178,
        ["postal carrier", "postal carriers"],
    ),
    ("travel agent", "travel agents", "Travel agents", 38691, 49901, []),
    ("construction manager", "construction managers", "Construction managers", 44921, 573250, []),
    (
        "financial advisor",
        "financial advisors",
        "Personal financial advisors",
        96015,
        327459,
        ["financial adviser", "financial advisers"],
    ),
]


def read_census(path: Path) -> dict[str, float]:
    """Name -> percent frequency from a fixed-width census first-name file."""
    out: dict[str, float] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0].capitalize()] = float(parts[1])
    return out


def build_names(benchmarks: Path) -> list[dict[str, object]]:
    female = read_census(benchmarks / "names_lists" / "dist.female.first.txt")
    male = read_census(benchmarks / "names_lists" / "dist.male.first.txt")
    rows = []
    for name in set(female) | set(male):
        f, m = female.get(name, 0.0), male.get(name, 0.0)
        total = f + m
        if total <= 0:
            continue
        rows.append({"name": name, "female_share": round(f / total, 4), "total_freq": total})
    rows.sort(key=lambda r: (-r["total_freq"], r["name"]))
    for r in rows:
        r["total_freq"] = round(r["total_freq"], 3)
    return rows[:TOP_N]


def plural(word: str) -> str:
    return IRREGULAR_PLURALS.get(word, word + "s")


def build_occupations(benchmarks: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    tsv = benchmarks / "winogender" / "occupations-stats.tsv"
    with tsv.open(encoding="utf-8") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            occ = rec["occupation"].strip()
            rows.append(
                {
                    "occupation": occ,
                    "plural": plural(occ),
                    "pct_female": float(rec["bls_pct_female"]),
                    "source": WINOGENDER_SOURCE,
                    "year": int(rec["bls_year"]),
                    "stat_category": "",
                    "variants": "|".join(WINOGENDER_VARIANTS.get(occ, [])),
                }
            )
    seen = {r["occupation"] for r in rows}
    for occ, pl, category, female, total, variants in ACS_2016:
        if occ in seen:
            raise ValueError(f"duplicate occupation {occ!r}")
        rows.append(
            {
                "occupation": occ,
                "plural": pl,
                "pct_female": round(100.0 * female / total, 2),
                "source": ACS_SOURCE,
                "year": 2016,
                "stat_category": category,
                "variants": "|".join(variants),
            }
        )
    rows.sort(key=lambda r: str(r["occupation"]))
    return rows


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", type=Path, default=ROOT.parent / "shared" / "benchmarks")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    write_csv(build_names(args.benchmarks), args.out / "names.csv")
    write_csv(build_occupations(args.benchmarks), args.out / "occupations.csv")


if __name__ == "__main__":
    main()
