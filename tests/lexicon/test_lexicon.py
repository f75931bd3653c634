"""Lexicon loading, matching, names and occupation tables (hand-made texts, known answers)."""

from __future__ import annotations

import csv
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from synthbias.lexicon import (
    LexiconError,
    MatchEntry,
    NameTable,
    TermMatcher,
    UnknownAxisError,
    load_axis,
    load_lexicon,
    trie_regex,
)
from synthbias.lexicon.loader import DATA_DIR
from synthbias.lexicon.occupations import Occupation, OccupationTable
from synthbias.lexicon.people import person_nouns

AXES = {"gender", "race_ethnicity", "religion", "age", "nationality", "socioeconomic"}


@pytest.fixture(scope="module")
def lex():
    return load_lexicon()


@pytest.fixture(scope="module")
def gender(lex):
    return lex.axis("gender")


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


# --------------------------------------------------------------------------- loading
def test_all_six_axes_load(lex):
    assert AXES <= set(lex.axes)
    for ax in lex:
        assert ax.group_names, ax.name
        assert ax.description, ax.name
        for g in ax.group_names:
            assert ax.terms(g), f"{ax.name}.{g} has no terms"


def test_default_lexicon_is_cached(lex):
    assert load_lexicon() is lex


def test_unknown_axis_error_lists_valid_names(lex):
    with pytest.raises(UnknownAxisError) as info:
        lex.axis("gendre")
    msg = str(info.value)
    assert "gendre" in msg
    for name in AXES:
        assert name in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, LexiconError)


def test_gender_groups_and_categories(gender):
    assert gender.group_names == ["male", "female", "neutral"]
    assert set(gender.terms("male", "pronouns")) == {"he", "him", "his", "himself"}
    assert set(gender.terms("female", "pronouns")) == {"she", "her", "hers", "herself"}
    assert {"they", "them", "their", "theirs", "themselves"} <= set(
        gender.terms("neutral", "pronouns")
    )
    for m, f in [("man", "woman"), ("father", "mother"), ("husband", "wife"), ("son", "daughter")]:
        assert m in gender.terms("male", "nouns") and f in gender.terms("female", "nouns")
    assert gender.terms("male", "titles") == ["Mr"]
    assert {"Mrs", "Ms", "Miss"} == set(gender.terms("female", "titles"))
    assert "Mary" in gender.terms("female", "names")
    assert "James" in gender.terms("male", "names")
    assert "Taylor" not in gender.terms("female") + gender.terms("male")  # ambiguous
    with pytest.raises(KeyError, match="groups: male, female, neutral"):
        gender.terms("other")


def test_group_of(gender):
    assert gender.group_of("he") == "male"
    assert gender.group_of("She") == "female"
    assert gender.group_of("Mary") == "female"
    assert gender.group_of("mary") is None  # names are case-sensitive
    assert gender.group_of("table") is None


# --------------------------------------------------------------------------- matching
def test_count_groups_pronouns_nouns_titles_names(gender):
    text = "She told him about her job. Mary met Mr. Smith; they left."
    assert gender.count_groups(text) == {"male": 2, "female": 3, "neutral": 1}


def test_count_groups_returns_every_group(gender):
    assert gender.count_groups("") == {"male": 0, "female": 0, "neutral": 0}
    assert gender.count_groups("No people here, just tables.") == {
        "male": 0,
        "female": 0,
        "neutral": 1,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HE SAID", {"male": 1}),
        ("He said", {"male": 1}),
        ("the therapist and the shell", {}),  # "he" inside words never matches
        ("“She” (her) [him] —his", {"female": 2, "male": 2}),
        ("she's here; he'd go", {"female": 1, "male": 1}),
        ("the man's hat", {"male": 1}),
        ("he/she", {"male": 1, "female": 1}),
        ("My mother-in-law and her son-in-law", {"female": 2, "male": 1}),
        ("will mark grant rose", {}),  # lowercase words are never names
        ("Mark the date. Grant access. Will you come?", {}),  # excluded names
        ("Miss the bus, then miss it again.", {}),  # title needs a capitalised word after
        ("Miss Smith and Ms. Lee", {"female": 2}),
        ("MARY", {}),  # names are matched capitalised only
        ("Oh boy, the mother tongue of Mother Nature", {}),  # ignored phrases
        ("the boy", {"male": 1}),
        ("Guy and a guy", {"male": 2}),  # name equal to a noun counts through the noun
    ],
)
def test_gender_matching_cases(gender, text, expected):
    assert nonzero(gender.count_groups(text)) == expected


def test_find_positions(gender):
    text = "Yesterday she met her brother."
    hits = gender.find(text)
    assert [(h.text, h.label) for h in hits] == [
        ("she", "female"),
        ("her", "female"),
        ("brother", "male"),
    ]
    for h in hits:
        assert text[h.start : h.end] == h.text


def test_multiword_longest_match_first():
    m = TermMatcher(
        [
            MatchEntry("nurse", "nurse"),
            MatchEntry("nurse practitioner", "np"),
            MatchEntry("practitioner", "prac"),
            MatchEntry("young adult", "ya"),
        ]
    )
    assert m.findall("the nurse practitioner") == ["np"]
    assert m.findall("the nurse, the practitioner") == ["nurse", "prac"]
    assert m.findall("a nurse practitioners") == ["nurse"]  # no boundary after "practitioner"
    # whitespace inside a multi-word term may be any run of whitespace
    assert m.findall("a Young\n  Adult") == ["ya"]
    assert m.count("nurse nurse practitioner NURSE") == {"nurse": 2, "np": 1}


def test_longest_match_backtracks_to_word_boundary():
    m = TermMatcher([MatchEntry("he", 1), MatchEntry("her", 2), MatchEntry("hers", 3)])
    assert m.findall("he her hers herself hero") == [1, 2, 3]


def test_case_sensitive_and_lookahead_entries():
    m = TermMatcher(
        [
            MatchEntry("Rose", "name", case_sensitive=True),
            MatchEntry("Dr", "title", case_sensitive=True, followed_by=r"\.?\s+[A-Z]"),
        ]
    )
    assert m.findall("Rose rose. Dr. Who and dr who; Dr no") == ["name", "title"]


def test_trie_regex_is_one_regex_and_rejects_conflicts():
    src = trie_regex([("abc", None), ("abd", None), ("ab", None)])
    assert re.fullmatch(src, "abc") and re.fullmatch(src, "ab")
    with pytest.raises(ValueError):
        trie_regex([("ab", None), ("ab", "x")])
    with pytest.raises(ValueError, match="two labels"):
        TermMatcher([MatchEntry("he", "a"), MatchEntry("HE", "b")])


def test_one_compiled_regex_per_axis(lex):
    for ax in lex:
        assert isinstance(ax.matcher().regex, re.Pattern)
        assert ax.matcher() is ax.matcher()  # cached


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = (
        "the nurse said that she would help him with his report before the meeting and "
        "Mary was happy but James and Mr. Lee left because they were tired her own car "
        "a Black woman the Muslim family 45-year-old rich people American Chinese"
    ).split()
    return [" ".join(rng.choices(words, k=rng.randint(0, 15))) for _ in range(n)]


@pytest.mark.parametrize("axis", sorted(AXES))
def test_batch_counts_equal_per_text_counts(lex, axis):
    ax = lex.axis(axis)
    texts = random_texts(500, seed=len(axis)) + ["", "\x00he\x00she", "She\x00"]
    batch = ax.matcher().count_batch(texts, chunk_size=64)
    assert batch.counts.shape == (len(texts), len(ax.group_names))
    assert list(batch.labels) == ax.group_names
    for i, t in enumerate(texts):
        per = ax.count_groups(t)
        assert [per[g] for g in ax.group_names] == batch.counts[i].tolist(), t
    assert ax.count_groups_batch([]).counts.shape == (0, len(ax.group_names))


def test_group_counts_helpers(gender):
    counts = gender.count_groups_batch(["he and she", "they"])
    assert counts["male"].tolist() == [1, 0]
    assert counts.to_dicts() == [{"male": 1, "female": 1}, {"neutral": 1}]
    frame = counts.to_frame()
    assert list(frame.columns) == ["male", "female", "neutral"]
    assert len(counts) == 2


def test_other_axes_match_known_terms(lex):
    race = lex.axis("race_ethnicity")
    assert nonzero(race.count_groups("A Black woman drank black coffee on white paper.")) == {
        "black": 1
    }
    assert nonzero(race.count_groups("Asian American and Native American students")) == {
        "asian": 1,
        "indigenous": 1,
    }
    religion = lex.axis("religion")
    assert nonzero(religion.count_groups("Muslims, a Christian, an Orthodox Jewish rabbi")) == {
        "muslim": 1,
        "christian": 1,
        "jewish": 1,
    }
    age = lex.axis("age")
    assert nonzero(age.count_groups("a 7-year-old, a 45 years old man, the elderly")) == {
        "child": 1,
        "middle_aged": 1,
        "older": 1,
    }
    assert nonzero(age.count_groups("a 110-year-old")) == {"older": 1}
    nat = lex.axis("nationality")
    assert nonzero(nat.count_groups("Mexican-American and South Korean; polish it")) == {
        "mexican": 1,
        "korean": 1,
    }
    assert nonzero(nat.count_groups("an American Indian ate French fries")) == {}
    ses = lex.axis("socioeconomic")
    assert nonzero(ses.count_groups("rich people, a rich flavor, poor results, the poor")) == {
        "upper_class": 1,
        "low_income": 1,
    }


# --------------------------------------------------------------------------- extra axes
def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_extra_axis_file_adds_an_axis_without_code(tmp_path):
    write(
        tmp_path / "disability.yaml",
        "name: disability\ndescription: test\ngroups:\n"
        "  disabled: {adjectives: [disabled, wheelchair user]}\n"
        "  nondisabled: {adjectives: [nondisabled, able-bodied]}\n",
    )
    lex = load_lexicon([tmp_path])
    assert "disability" in lex.axes and "gender" in lex.axes
    ax = lex.axis("disability")
    assert ax.count_groups("A wheelchair user and an able-bodied man") == {
        "disabled": 1,
        "nondisabled": 1,
    }
    assert "disability" not in load_lexicon().axes  # the cached default is untouched


def test_extra_file_overrides_builtin_axis(tmp_path):
    path = write(tmp_path / "x.yaml", "name: religion\ngroups:\n  pastafarian: {nouns: [pirate]}\n")
    lex = load_lexicon(path)
    assert lex.axis("religion").group_names == ["pastafarian"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: t\ngroups:\n  a: {n: [x]}\n  b: {n: [X]}\n", "in both"),
        ("name: t\ngroupz: {}\n", "unknown keys"),
        ("name: t\naligned:\n  groups: [a, b]\n  n: [[x]]\n", "has 1 terms"),
        ("name: t\ncategories:\n  n: {followed_by: '('}\ngroups: {a: {n: [x]}}\n", "not a regex"),
        ("name: T-1\ngroups: {}\n", "lower_snake_case"),
        ("name: t\ngroups:\n  a: {n: [x]}\nnames: {table: nope.csv}\n", "not found"),
        ("name: t\ngroups:\n  a: {n: [x]}\nswap: {pairs: [[x, y]]}\n", "not a term"),
        ("name: t\ngroups: [1, 2]\n", "groups must be a mapping"),
        ("name: t\ngroups:\n  a: {n: [1]}\n", "non-empty strings"),
        ("name: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_axis_files_name_the_problem(tmp_path, body, message):
    path = write(tmp_path / "t.yaml", body)
    with pytest.raises(LexiconError, match=re.escape(message)) as info:
        load_axis(path)
    assert str(path) in str(info.value)


def test_missing_extra_path(tmp_path):
    with pytest.raises(LexiconError, match="no such"):
        load_lexicon([tmp_path / "missing.yaml"])


# --------------------------------------------------------------------------- names
def test_names_table_sanity():
    table = NameTable.from_csv(DATA_DIR / "names.csv")
    assert len(table) == 1000
    assert table.gender("Mary") == "female"
    assert table.gender("James") == "male"
    assert table.female_share("Mary") > 0.99 and table.female_share("James") < 0.01
    for ambiguous in ("Taylor", "Terry", "Kelly", "Leslie", "Jamie"):
        assert table.gender(ambiguous) == "ambiguous", ambiguous
    assert table.gender("Zzyzx") is None
    shares = [i.female_share for i in table]
    assert all(0.0 <= s <= 1.0 for s in shares)
    freqs = [i.total_freq for i in table]
    assert freqs == sorted(freqs, reverse=True)
    assert all(n[0].isupper() and n[1:].islower() for n in table.names)


def test_name_threshold_moves_labels():
    table = NameTable.from_csv(DATA_DIR / "names.csv")
    assert table.gender("Kelly", 0.9) == "ambiguous"  # 0.82 female
    assert table.gender("Kelly", 0.8) == "female"
    assert table.gender("Terry", 0.75) == "male"  # 0.20 female
    for bad in (0.5, 0.2, 1.5):
        with pytest.raises(ValueError):
            table.gender("Mary", bad)


def test_name_swap_map_by_frequency_rank():
    table = NameTable.from_csv(DATA_DIR / "names.csv")
    swap = table.swap_map()
    assert swap["Mary"] == "James" and swap["James"] == "Mary"
    assert swap["Patricia"] == "John" and swap["John"] == "Patricia"
    assert "Taylor" not in swap
    by = table.by_gender()
    for f, m in zip(by["female"], by["male"], strict=False):
        assert swap[swap[f]] == f and swap[swap[m]] == m


def test_excluded_names_are_not_gendered(gender):
    assert "Mark" not in gender.names and "Christian" not in gender.names
    assert gender.group_of("Mark") is None


def test_name_threshold_changes_axis_matching(gender):
    assert nonzero(gender.matcher().count("Kelly left")) == {}
    assert gender.matcher(0.8).count("Kelly left") == {"female": 1}


def test_names_csv_matches_census_derivation(benchmarks):
    """names.csv is exactly f/(f+m) of the census files (checked on every row)."""

    def read(p: Path) -> dict[str, float]:
        return {
            line.split()[0].capitalize(): float(line.split()[1])
            for line in p.read_text().splitlines()
            if line.strip()
        }

    female = read(benchmarks / "names_lists" / "dist.female.first.txt")
    male = read(benchmarks / "names_lists" / "dist.male.first.txt")
    with (DATA_DIR / "names.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        f, m = female.get(r["name"], 0.0), male.get(r["name"], 0.0)
        assert float(r["female_share"]) == pytest.approx(f / (f + m), abs=1e-4), r
        assert float(r["total_freq"]) == pytest.approx(f + m, abs=1e-3), r
    kept = {r["name"] for r in rows}
    smallest = min(float(r["total_freq"]) for r in rows)
    for name in set(female) | set(male):
        if female.get(name, 0) + male.get(name, 0) > smallest + 1e-9:
            assert name in kept, name


# --------------------------------------------------------------------------- occupations
def test_occupation_table_rows(gender):
    occ = gender.occupations
    assert occ is not None and len(occ) >= 90
    for row in occ:
        assert row.source and 1990 < row.year < 2030, row
        assert 0 <= row.pct_female <= 100
        assert row.plural
    assert occ["nurse"].plural == "nurses"
    assert occ["salesperson"].plural == "salespeople"
    assert "chief executive" in occ and "CEO" in occ["chief executive"].forms
    assert any(" " in r.name for r in occ)  # multi-word occupations


def test_occupation_codes_move_with_thresholds(gender):
    occ = gender.occupations
    assert occ["nurse"].code() == "female-coded"
    assert occ["carpenter"].code() == "male-coded"
    assert occ["accountant"].code() == "neutral"
    assert occ["teacher"].code() == "female-coded"  # 71.0
    assert occ["teacher"].code(hi=75) == "neutral"
    assert occ["officer"].code() == "neutral"  # 30.42
    assert occ["officer"].code(lo=31) == "male-coded"
    codes = occ.codes(lo=10, hi=90)
    assert codes["engineer"] == "neutral" and codes["plumber"] == "male-coded"
    assert {o.name for o in occ.coded("female-coded", lo=10, hi=90)} >= {
        "secretary",
        "receptionist",
    }
    for lo, hi in [(70, 30), (-1, 50), (50, 101)]:
        with pytest.raises(ValueError):
            occ["nurse"].code(lo, hi)
    # lo == hi is the majority convention: strictly below is male-, strictly above female-coded
    assert occ["lawyer"].code(50, 50) == "male-coded"  # 34.5
    assert occ["accountant"].code(50, 50) == "female-coded"  # 59.7
    at_50 = Occupation("x", "xs", 50.0, "test", 2020)
    assert at_50.code(50, 50) == "neutral" and at_50.code(40, 50) == "female-coded"


def test_occupations_match_winogender_stats(benchmarks, gender):
    with (benchmarks / "winogender" / "occupations-stats.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 60
    for r in rows:
        occ = gender.occupations[r["occupation"]]
        assert occ.pct_female == pytest.approx(float(r["bls_pct_female"]))
        assert occ.year == int(r["bls_year"])
        assert "Winogender" in occ.source


# --------------------------------------------------------------------------- speed
def test_counting_speed_smoke(gender):
    """100k short texts counted in well under a minute (target: >= 50k texts/s on one core)."""
    rng = np.random.default_rng(0)
    vocab = (
        "the a nurse engineer said that she he would help him her with his report before "
        "meeting in office today and Mary James was happy about it they people"
    ).split()
    texts = [" ".join(rng.choice(vocab, size=12)) for _ in range(100_000)]
    t0 = time.perf_counter()
    counts = gender.count_groups_batch(texts)
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in texts[:20_000]:
        gender.count_groups(t)
    single_s = (time.perf_counter() - t0) * 5
    print(f"\nbatch: {len(texts) / batch_s:,.0f} texts/s; per text: {len(texts) / single_s:,.0f}/s")
    assert counts.counts.sum() > 0
    assert batch_s < 30 and single_s < 60  # loose bounds for slow CI machines


# --------------------------------------------------------------------------- BLS/ACS table
ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "scripts" / "raw"


@pytest.fixture(scope="module")
def bls() -> OccupationTable:
    return OccupationTable.from_csv(DATA_DIR / "occupations_bls.csv")


def _build_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_occupation_table", ROOT / "scripts" / "build_occupation_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_bls_table_size_sources_and_unique_forms(bls):
    kinds = {k: sum(1 for r in bls if r.kind == k) for k in ("category", "unnamed", "pooled")}
    assert kinds["category"] + kinds["unnamed"] >= 500  # detailed statistical categories
    assert kinds["category"] >= 400 and kinds["pooled"] >= 20
    assert sum(kinds.values()) == len(bls)
    seen: dict[str, str] = {}
    for r in bls:
        assert r.source and r.year in (2016, 2020) and r.stat_category
        assert ("BLS CPS 2020" in r.source) == (r.year == 2020)
        for f in r.forms:
            assert seen.setdefault(f.lower(), r.name) == r.name, f  # a form belongs to one row
    # no occupation form is a gendered referent or a non-occupational person noun
    gendered = {e.term.lower() for e in load_lexicon().axis("gender").entries() if e.label}
    assert not (set(seen) & gendered) and not (set(seen) & person_nouns())


# Figures typed from the published BLS table 11 (2020 annual averages, percent women) and the
# ACS 2016 worker counts, independent of the build script's parser.
SOURCE_SAMPLE = [
    ("registered nurse", "Registered nurses", 87.4, 2020, ["nurse", "nurses"]),
    ("police officer", "Police officers", 17.1, 2020, ["cop"]),
    ("writer", "Writers and authors", 64.9, 2020, ["author", "authors"]),
    ("chief executive", "Chief executives", 29.3, 2020, ["CEO", "CEOs"]),
    ("lawyer", "Lawyers", 37.4, 2020, ["attorney"]),
    ("electrician", "Electricians", 3.1, 2020, []),
    ("secretary", "Secretaries and administrative assistants, except legal, medical, and executive",
     92.9, 2020, ["administrative assistant"]),
    ("surgeon", "Surgeons", 26.3, 2020, []),
    ("editor", "Editors", 61.1, 2020, []),
    ("photographer", "Photographers", 52.1, 2020, []),
    ("musician", "Musicians and singers", 31.8, 2020, ["singer"]),
    ("legislator", "Legislators", round(100 * 7045 / 15047, 1), 2016, ["politician"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "category", "pct", "year", "forms"), SOURCE_SAMPLE)
def test_bls_rows_match_their_source_figures(bls, name, category, pct, year, forms):
    r = bls[name]
    assert (r.stat_category, r.pct_female, r.year) == (category, pct, year)
    assert set(forms) <= set(r.forms)


def test_every_category_row_equals_its_raw_figure(bls):
    """All category rows against the raw files (BLS percent as published; ACS from counts)."""
    with (RAW / "bls_cpsaat11_2020.csv").open(encoding="utf-8-sig", newline="") as fh:
        published = {r[0].strip(): r[2].strip() for r in csv.reader(fh) if len(r) >= 8 and r[0]}
    with (RAW / "acs_jobs_gender_2016.csv").open(encoding="utf-8", newline="") as fh:
        acs = {r["occupation"].strip(): r for r in csv.DictReader(fh)}
    checked = 0
    for r in bls:
        if r.kind == "pooled":
            continue
        if r.year == 2020:
            assert float(published[r.stat_category]) == r.pct_female, r.name
        else:
            a = (
                acs[r.stat_category.replace("gambling", "gaming")]
                if r.stat_category not in acs
                else acs[r.stat_category]
            )
            share = 100 * float(a["workers_female"]) / float(a["total_workers"])
            assert r.pct_female == pytest.approx(share, abs=0.05), r.name
            assert published.get(r.stat_category, "–") in ("–", ""), r.name  # BLS suppressed it
        checked += 1
    assert checked >= 500


def test_pooled_rows_are_employment_weighted(bls):
    """Ambiguous nouns: 'doctor' pools other physicians (40.6 %, 757k) and surgeons (26.3 %, 59k)
    of BLS table 11 by employment; 'officer' takes police officers (the documented sense)."""
    with (RAW / "bls_cpsaat11_2020.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = {r[0].strip(): r for r in csv.reader(fh) if len(r) >= 8 and r[0]}

    def women_total(cat: str) -> tuple[float, float]:
        total = float(rows[cat][1].replace(",", ""))
        return total * float(rows[cat][2]) / 100, total

    w = [women_total(c) for c in ("Other physicians", "Surgeons")]
    expected = round(100 * sum(a for a, _ in w) / sum(b for _, b in w), 1)
    assert bls["doctor"].pct_female == expected == bls["physician"].pct_female
    assert bls["doctor"].kind == "pooled" and "Surgeons" in bls["doctor"].stat_category
    assert bls["officer"].pct_female == bls["police officer"].pct_female == 17.1
    assert bls["engineer"].kind == "pooled" and bls["engineer"].pct_female < 20


def test_build_script_reproduces_the_committed_table():
    mod = _build_module()
    rows = mod.build()
    with (DATA_DIR / "occupations_bls.csv").open(encoding="utf-8", newline="") as fh:
        committed = list(csv.DictReader(fh))
    assert [{k: str(v) for k, v in r.items()} for r in rows] == committed


def test_category_nouns_rule():
    mod = _build_module()
    assert mod.category_nouns("Writers and authors") == ["writer", "author"]
    assert mod.category_nouns("Advertising and promotions managers") == [
        "advertising manager",
        "promotions manager",
    ]
    assert mod.category_nouns("Farmers, ranchers, and other agricultural managers") == [
        "farmer",
        "rancher",
        "agricultural manager",
    ]
    assert mod.category_nouns("Architects, except landscape and naval") == ["architect"]
    assert mod.category_nouns("Secretaries and administrative assistants, except legal") == [
        "secretary",
        "administrative assistant",
    ]


def test_bls_table_cross_checks_winogender(benchmarks):
    """The Winogender occupations the new table knows have BLS 2020 shares near Winogender's
    BLS 2015/16 figures (median gap a few points; a handful differ by category definition)."""
    from synthbias.measure.rules import GenderRuleScorer

    scorer = GenderRuleScorer()
    table = scorer.axis.occupations
    with (benchmarks / "winogender" / "occupations-stats.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    gaps, same_side = [], 0
    for r in rows:
        found = scorer.score_text(f"The {r['occupation']} arrived.").occupations
        if not found:
            continue
        new = table[found[0][0]].pct_female
        old = float(r["bls_pct_female"])
        gaps.append(abs(new - old))
        same_side += (new > 50) == (old > 50)
    assert len(gaps) >= 50  # of 60
    assert float(np.median(gaps)) < 5
    assert same_side / len(gaps) >= 0.85
