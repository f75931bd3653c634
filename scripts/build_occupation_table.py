"""Build ``occupations_bls.csv``: 500+ detailed US occupations with the share of women.

Run from the repository root (it reads only the raw files committed under ``scripts/raw/``):

    python scripts/build_occupation_table.py

Sources (both public-domain US government statistics; see ``src/synthbias/lexicon/data/README.md``
for the repositories, commits and licenses they were fetched from):

* ``raw/bls_cpsaat11_2020.csv`` -- BLS Current Population Survey, 2020 annual averages, table 11
  "Employed persons by detailed occupation, sex, race, and Hispanic or Latino ethnicity"
  (total employed in thousands, percent women). BLS suppresses the percentage (a dash) where the
  base is under 50,000 employed.
* ``raw/acs_jobs_gender_2016.csv`` -- US Census Bureau ACS 2016 1-year, full-time year-round
  workers by sex and detailed occupation (the 2016 rows of TidyTuesday 2019-03-05
  ``jobs_gender.csv``); used only where the BLS figure is missing.

Steps:

1. Every detailed (leaf) BLS row with a published percentage is a row (source BLS CPS 2020).
2. A leaf BLS row whose percentage is suppressed takes the ACS 2016 figure of the ACS category
   with the same name, when that ACS category has at least ``MIN_ACS_WORKERS`` workers.
3. ACS 2016 categories with no BLS namesake (the 2010 census classification splits and names some
   occupations differently) are added when they have ``MIN_ACS_WORKERS`` workers and none of their
   nouns is already taken.
4. Each category is mapped to the nouns people write (:func:`category_nouns`): the category name is
   split at "and"/commas ("Writers and authors" -> writer, author; "Advertising and promotions
   managers" -> advertising manager, promotions manager), qualifiers after a comma and ", except
   ..." / ", including ..." are dropped, every noun is singularised and pluralised, and
   ``EXTRA_FORMS`` adds the common names a category has (CEO, doctor, nurse, cop, ...).
5. **Ambiguous nouns.** A noun derived from several categories, or the bare head noun of several
   categories ("engineer", "manager", "director", "teacher", "scientist", ...), becomes its own
   *pooled* row: the employment-weighted share of women over every category it can stand for
   (women = total x percent / 100, summed). ``SENSES`` overrides pooling where one sense dominates
   everyday writing ("officer" -> police officers, as the issue asks; "doctor" -> physicians and
   surgeons). Residual categories ("Managers, all other") never claim a bare noun. Bare words that
   are mostly not people ("printer", "server", "sewer", ...) and nouns the gender axis already
   counts as gendered referents ("actor", "waitress", "policeman", ...) are dropped, so a form
   belongs to one row only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAW = Path(__file__).resolve().parent / "raw"
OUT = ROOT / "src" / "synthbias" / "lexicon" / "data" / "occupations_bls.csv"
BLS_FILE = RAW / "bls_cpsaat11_2020.csv"
ACS_FILE = RAW / "acs_jobs_gender_2016.csv"
MIN_ACS_WORKERS = 5_000

BLS_SOURCE = (
    "BLS CPS 2020 annual averages, table 11 (cpsaat11; via github.com/pjoachims/dash-labor "
    "@95583d7 us-labor/data/cpsaat11.csv, MIT)"
)
ACS_SOURCE = (
    "US Census ACS 2016 1-year, full-time year-round workers (TidyTuesday 2019-03-05 "
    "jobs_gender.csv; via github.com/INFO-523-Exercises/r-py-hw4-asbollapragada @56c09a9)"
)

# Words that make a category segment a person noun (its singular ends with one of these).
PERSON_SUFFIXES = (
    "er", "or", "ist", "ian", "ant", "ent", "ee", "ect", "man", "eon", "ess", "ier", "yst",
    "ard", "ert", "ot", "smith",
)  # fmt: skip
# Words with a person suffix that are not people.
NOT_PERSON = {
    "plant", "equipment", "press", "floor", "door", "motor", "tractor", "elevator", "escalator",
    "conveyor", "monitor", "hoist", "instrument", "board", "robot", "interior", "exterior",
    "indicator", "reactor", "sector", "paper", "leather", "timber", "rubber", "water", "power",
    "computer", "transfer", "meter", "sewer", "poultry", "first-line", "counter", "restaurant",
    "nonrestaurant", "pedestrian",
}  # fmt: skip
PERSON_WORDS = {
    "nurse", "aide", "clerk", "chef", "cook", "judge", "model", "guard", "host", "maid",
    "clergy", "paralegal", "athlete", "scout", "coach", "tailor", "usher", "midwife", "magistrate",
    "diver", "captain", "bellhop", "concierge", "roustabout", "rigger", "jailer", "bailiff",
    "broker", "agent", "engineer", "dispatcher", "bartender", "nanny", "hygienist", "curator",
    "guide", "sailor", "oiler", "flagger", "pruner", "carpenter", "mason", "glazier", "plumber",
    "electrician", "machinist", "millwright", "upholsterer", "jeweler", "optician", "pilot",
    "cosmetologist", "pedicurist", "manicurist", "photogrammetrist", "typist", "keyer",
    "yardmaster", "superintendent", "postmaster", "crew", "staff", "fisher", "logger",
    "paramedic", "mechanic", "cleric", "medic", "secretary", "actuary", "notary", "executive",
    "detective", "representative", "orderly", "mortician",
}  # fmt: skip
# Bare words that are mostly not a person in running text, or too generic to code.
BARE_EXCLUDE = {
    "printer", "server", "cleaner", "sewer", "counter", "mover", "tender", "sorter", "packer",
    "processor", "checker", "sampler", "weigher", "keyer", "caster", "pourer", "drier", "tester",
    "grader", "feeder", "collector", "carrier", "model", "host", "worker", "specialist", "helper",
    "setter", "operator", "repairer", "installer", "finisher", "handler", "attendant",
    "representative", "computer", "scout", "guide", "staff", "crew", "maker",
    "fabricator", "assembler", "servicer", "erecter", "erector", "taper", "binder", "roaster",
    "dresser", "trimmer", "layer", "promoter", "demonstrator", "displayer",
    "recorder", "reader", "abstractor", "searcher", "controller", "monitor", "screener",
    "interviewer", "authorizer", "marker", "receiver", "filler", "stocker", "presser", "engraver",
    "etcher", "shaper", "molder", "cutter", "polisher", "buffer", "lapper", "grinder", "mixer",
    "blender", "crusher", "blaster", "driller", "conductor", "officer",
    "other", "hand", "major", "general", "chief", "head",
    "expert", "builder", "taker", "distributor", "filer", "superintendent", "garment",
}  # fmt: skip
# Categories whose derived nouns would be wrong or that have everyday names the rules miss.
EXTRA_FORMS: dict[str, list[str]] = {
    "Chief executives": ["CEO", "chief executive officer", "president", "vice president"],
    "Legislators": ["politician", "lawmaker", "senator", "congressperson"],
    "Registered nurses": ["nurse", "RN"],
    "Lawyers": ["attorney", "solicitor", "barrister"],
    "Postsecondary teachers": ["professor", "lecturer", "college teacher", "university teacher"],
    "Elementary and middle school teachers": ["schoolteacher", "primary school teacher"],
    "Secondary school teachers": ["high school teacher"],
    "Police officers": ["cop", "patrol officer", "sheriff", "deputy sheriff"],
    "Aircraft pilots and flight engineers": ["pilot", "airline pilot", "aviator"],
    "Driver/sales workers and truck drivers": ["truck driver", "trucker", "lorry driver"],
    "Taxi drivers": ["cab driver", "cabbie"],
    "Shuttle drivers and chauffeurs": ["chauffeur"],
    "News analysts, reporters, and journalists": ["journalist", "reporter", "correspondent"],
    "Writers and authors": ["writer", "author", "novelist", "poet", "playwright", "screenwriter"],
    "Musicians and singers": ["musician", "singer", "vocalist", "guitarist", "pianist"],
    "Artists and related workers": ["artist", "sculptor", "illustrator"],
    "Producers and directors": ["film director", "filmmaker", "film producer"],
    "Music directors and composers": ["composer", "conductor", "music director"],
    "Software developers": ["software engineer", "software developer"],
    "Computer programmers": ["programmer", "coder"],
    "Clergy": ["priest", "pastor", "preacher", "rabbi", "imam", "chaplain"],
    "Janitors and building cleaners": ["janitor", "custodian"],
    "Maids and housekeeping cleaners": ["housekeeper", "housecleaner"],
    "Childcare workers": ["childcare worker", "child care worker", "babysitter", "daycare worker"],
    "Personal care aides": ["caregiver", "carer"],
    "Hairdressers, hairstylists, and cosmetologists": ["hair stylist", "stylist"],
    "Receptionists and information clerks": ["receptionist"],
    "Tellers": ["bank teller"],
    "Firefighters": ["fire fighter"],
    "Cashiers": ["checkout clerk"],
    "Retail salespersons": ["sales clerk", "shop assistant", "salesperson", "sales associate"],
    "Management analysts": ["management consultant", "consultant"],
    "Accountants and auditors": ["CPA"],
    "Farmers, ranchers, and other agricultural managers": ["farmer", "rancher"],
    "Miscellaneous agricultural workers": ["farmworker", "farm worker", "farmhand"],
    "Construction laborers": ["construction worker", "laborer"],
    "Nursing assistants": ["nursing aide", "CNA", "certified nursing assistant"],
    "Home health aides": ["home health aide"],
    "Veterinarians": ["veterinary surgeon"],
    "Dentists": ["dental surgeon"],
    "Pharmacists": ["druggist"],
    "Athletes and sports competitors": ["athlete", "sportsperson"],
    "Coaches and scouts": ["coach"],
    "Dancers and choreographers": ["dancer"],
    "Security guards and gambling surveillance officers": ["security guard", "bouncer"],
    "Chefs and head cooks": ["chef", "head cook"],
    "Waiters and waitresses": ["waitstaff"],
    "Secretaries and administrative assistants, except legal, medical, and executive": [
        "secretary",
        "administrative assistant",
    ],
    "Bus drivers, transit and intercity": ["bus driver", "transit bus driver"],
    "Bus drivers, school": ["school bus driver"],
    "Electricians": ["electrician"],
    "Plumbers, pipefitters, and steamfitters": ["plumber"],
    "Automotive service technicians and mechanics": ["auto mechanic", "car mechanic"],
    "Economists": ["economist"],
    "Detectives and criminal investigators": ["detective", "police detective"],
    "Private detectives and investigators": ["private investigator", "private detective"],
    "Librarians and media collections specialists": ["librarian"],
    "Editors": ["editor"],
    "Photographers": ["photographer"],
    "Tutors": ["tutor"],
    "Teaching assistants": ["teacher's aide", "teacher aide"],
    "Interpreters and translators": ["interpreter", "translator"],
    "Flight attendants": ["flight attendant", "cabin crew"],
    "Dietitians and nutritionists": ["dietician"],
    "Speech-language pathologists": ["speech therapist"],
    "Judges, magistrates, and other judicial workers": ["judge", "magistrate"],
    "Paralegals and legal assistants": ["paralegal", "legal assistant"],
    "Physician assistants": ["physician assistant", "physician associate"],
    "Exercise trainers and group fitness instructors": ["personal trainer", "fitness instructor"],
    "Personal financial advisors": ["financial advisor", "financial adviser", "financial planner"],
}
# Categories whose name the splitting rule gets wrong: their nouns, replacing the derived ones.
OVERRIDES: dict[str, list[str]] = {
    "Driver/sales workers and truck drivers": ["truck driver", "delivery driver"],
    "Computer, automated teller, and office machine repairers": [
        "computer repairer",
        "office machine repairer",
    ],
    "Pressers, textile, garment, and related materials": ["garment presser"],
    "Agents and business managers of artists, performers, and athletes": [
        "talent agent",
        "sports agent",
    ],
    "Lifeguards and other recreational, and all other protective service workers": ["lifeguard"],
    "Food servers, nonrestaurant": ["food server"],
    "Hosts and hostesses, restaurant, lounge, and coffee shop": ["hostess", "restaurant host"],
    "Police and sheriff's patrol officers": [],  # ACS twin of BLS "Police officers"
}
# Ambiguous nouns with one dominant everyday sense: noun -> the categories it stands for
# (pooled by employment when several). Everything not listed here is pooled over all categories.
SENSES: dict[str, list[str]] = {
    "officer": ["Police officers"],
    "executive": ["Chief executives", "General and operations managers"],
    "doctor": ["Emergency medicine physicians", "Radiologists", "Other physicians", "Surgeons"],
    "physician": ["Emergency medicine physicians", "Radiologists", "Other physicians", "Surgeons"],
    "medical doctor": ["Emergency medicine physicians", "Radiologists", "Other physicians"],
    "teacher": [
        "Preschool and kindergarten teachers",
        "Elementary and middle school teachers",
        "Secondary school teachers",
        "Special education teachers",
        "Other teachers and instructors",
    ],
    "social worker": [
        "Child, family, and school social workers",
        "Healthcare social workers",
        "Mental health and substance abuse social workers",
        "Social workers, all other",
    ],
    "mechanic": [
        "Aircraft mechanics and service technicians",
        "Automotive service technicians and mechanics",
        "Bus and truck mechanics and diesel engine specialists",
        "Heavy vehicle and mobile equipment service technicians and mechanics",
        "Small engine mechanics",
        "Industrial and refractory machinery mechanics",
    ],
}
# Non-default plurals.
IRREGULAR = {
    "people": "person",
    "clergy": "clergy",
    "staff": "staff",
    "crew": "crew",
    "waitstaff": "waitstaff",
    "police": "police",
    "chiefs": "chief",
}
PLURALS = {
    "person": "people",
    "clergy": "",
    "staff": "",
    "crew": "",
    "waitstaff": "",
    "CPA": "CPAs",
}
RESIDUAL = re.compile(r"(,\s*all other|^other |^miscellaneous )", re.IGNORECASE)


@dataclass
class Category:
    """One statistical category and its figure."""

    name: str
    source: str
    year: int
    pct_female: float
    women: float  # employed women (BLS: thousands; ACS: workers), for pooling
    total: float
    nouns: list[str] = field(default_factory=list)


def singular(word: str) -> str:
    """Singular of the last word of an occupation plural (``secretaries`` -> ``secretary``)."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if word.endswith("men") and not word.endswith("omen"):
        return word[:-3] + "man"
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def plural(noun: str) -> str:
    """Plural of a singular noun phrase (pluralises the last word)."""
    if noun in PLURALS:
        return PLURALS[noun]
    head, _, last = noun.rpartition(" ")
    if last in PLURALS:
        p = PLURALS[last]
    elif last.endswith("person"):
        p = last[:-6] + "people"
    elif last.endswith("man"):
        p = last[:-3] + "men"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        p = last[:-1] + "ies"
    elif last.endswith(("s", "sh", "ch", "x")):
        p = last + "es"
    elif last.endswith("'s aide"):
        p = last + "s"
    elif last.isupper():
        p = last + "s"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def is_person(word: str) -> bool:
    """Whether a singular word is a person noun (the head of an occupation)."""
    if word in NOT_PERSON:
        return False
    return word in PERSON_WORDS or word.endswith(PERSON_SUFFIXES)


def category_nouns(name: str) -> list[str]:
    """Singular everyday nouns for a category name (see the module docstring, step 4)."""
    if name in OVERRIDES:
        return list(OVERRIDES[name])
    text = name.lower().replace("--", ", ").replace("/", " and ")
    text = re.sub(r",?\s*\b(except|including)\b.*$", "", text)
    text = re.sub(r",\s*all other$", "", text)
    text = re.sub(r"^(other|miscellaneous)\s+", "", text)
    if text.startswith("first-line supervisors of") or text.startswith("supervisors of"):
        return []
    parts = [p.strip() for p in re.split(r",\s*(?:and\s+)?|\s+and\s+|\s+or\s+", text)]
    parts = [re.sub(r"^(related|other)\s+", "", p) for p in parts]
    parts = [p for p in parts if p and p not in ("related", "other")]
    nouns: list[str | None] = []
    for p in parts:
        words = p.split()
        last = singular(words[-1])
        nouns.append(" ".join([*words[:-1], last]) if is_person(last) else None)
    # A part that is not a person noun is a modifier of the next person noun's head
    # ("advertising and promotions managers"); trailing non-person parts are qualifiers.
    out: list[str] = []
    for i, p in enumerate(parts):
        if nouns[i] is not None:
            out.append(nouns[i])  # type: ignore[arg-type]
            continue
        nxt = next((n for n in nouns[i + 1 :] if n is not None), None)
        if nxt is not None:  # the modifier takes the next noun's own modifiers' place
            head = nxt.split(maxsplit=1)[-1] if " " in nxt else nxt
            out.append(f"{p} {head}")
    return list(dict.fromkeys(out))


def read_bls(path: Path) -> tuple[list[Category], list[tuple[str, float]]]:
    """(published leaf categories, suppressed leaves as (name, total thousands))."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    data = [r for r in rows if len(r) >= 8 and r[0].strip() and r[7].strip().isdigit()]
    published, suppressed = [], []
    for i, r in enumerate(data):
        level = int(r[7])
        nxt = int(data[i + 1][7]) if i + 1 < len(data) else -1
        if nxt > level or level == 0:
            continue  # an aggregate with detailed rows below it
        total = float(r[1].replace(",", ""))
        pct = r[2].strip()
        if pct in ("–", ""):
            suppressed.append((r[0].strip(), total))
            continue
        p = float(pct)
        published.append(Category(r[0].strip(), BLS_SOURCE, 2020, p, total * p / 100, total))
    return published, suppressed


def read_acs(path: Path) -> dict[str, Category]:
    """ACS 2016 categories by lower-case name, pct recomputed from the worker counts."""
    out = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["year"] != "2016":
                continue
            total, women = float(rec["total_workers"]), float(rec["workers_female"])
            name = rec["occupation"].strip()
            pct = round(100 * women / total, 1) if total else 0.0
            out[_key(name)] = Category(name, ACS_SOURCE, 2016, pct, women, total)
    return out


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", name.lower().replace("gaming", "gambling")).strip()


def gendered_terms() -> set[str]:
    """Terms the gender axis already counts as referents and the non-occupational person nouns
    (``person_nouns.txt``); neither can be an occupation form."""
    sys.path.insert(0, str(ROOT / "src"))
    from synthbias.lexicon import load_lexicon
    from synthbias.lexicon.people import person_nouns

    axis = load_lexicon().axis("gender")
    return {e.term.lower() for e in axis.entries(0.9) if not e.case_sensitive} | person_nouns()


def pooled(cats: list[Category]) -> tuple[float, str, int]:
    """Employment-weighted percent women over categories of one source (BLS preferred)."""
    bls = [c for c in cats if c.source == BLS_SOURCE]
    use = bls or cats
    women, total = sum(c.women for c in use), sum(c.total for c in use)
    return round(100 * women / total, 1), use[0].source, use[0].year


def build(bls_path: Path = BLS_FILE, acs_path: Path = ACS_FILE) -> list[dict[str, object]]:
    published, suppressed = read_bls(bls_path)
    acs = read_acs(acs_path)
    cats: list[Category] = list(published)
    used_acs = {_key(c.name) for c in published}
    for name, _total in suppressed:
        a = acs.get(_key(name))
        if a is not None and a.total >= MIN_ACS_WORKERS:
            cats.append(Category(a.name, a.source, a.year, a.pct_female, a.women, a.total, []))
            used_acs.add(_key(name))
    by_name = {c.name: c for c in cats}
    for c in cats:
        c.nouns = [] if RESIDUAL.search(c.name) else category_nouns(c.name)
        c.nouns = list(dict.fromkeys([*c.nouns, *EXTRA_FORMS.get(c.name, [])]))
    taken = {n.lower() for c in cats for n in c.nouns}
    for key, a in acs.items():
        if key in used_acs or a.total < MIN_ACS_WORKERS or RESIDUAL.search(a.name):
            continue
        nouns = category_nouns(a.name)
        if nouns and not any(n.lower() in taken for n in nouns):
            a.nouns = nouns
            cats.append(a)
            by_name[a.name] = a
            taken.update(n.lower() for n in nouns)
    gendered = gendered_terms()

    def usable(noun: str) -> bool:
        low = noun.lower()
        return (
            low not in gendered
            and plural(noun).lower() not in gendered
            and not (" " not in low and low in BARE_EXCLUDE)
        )

    claims: dict[str, list[Category]] = defaultdict(list)
    for c in cats:
        for n in c.nouns:
            if usable(n):
                claims[n.lower()].append(c)
    heads: dict[str, list[Category]] = defaultdict(list)  # bare head noun -> categories
    for c in cats:
        derived = [] if RESIDUAL.search(c.name) else category_nouns(c.name)
        for n in derived:
            words = n.lower().split()
            if len(words) > 1 and usable(words[-1]):
                heads[words[-1]].append(c)
    for c in cats:
        if c.name.lower().startswith(("first-line supervisors", "supervisors of")):
            heads["supervisor"].append(c)
    # A category named exactly by the noun ("Editors" -> editor) or listing it in EXTRA_FORMS
    # owns it; otherwise a noun that can stand for several categories (claimed by them or their
    # bare head noun) is pooled over them, and a head noun of one category only is its variant.
    primary: dict[str, set[str]] = defaultdict(set)
    for c in cats:
        own = [] if RESIDUAL.search(c.name) else category_nouns(c.name)
        if len(own) == 1 and " and " not in c.name and "," not in c.name:
            primary[own[0].lower()].add(c.name)
        for n in EXTRA_FORMS.get(c.name, []):
            primary[n.lower()].add(c.name)
    pooled_rows: dict[str, list[Category]] = {}
    for noun in sorted(set(claims) | set(heads)):
        cs = list({c.name: c for c in [*claims.get(noun, []), *heads.get(noun, [])]}.values())
        if len(primary.get(noun, ())) == 1:
            continue
        if len(cs) > 1:
            pooled_rows[noun] = cs
        elif noun not in claims and noun not in taken_forms(cats):
            cs[0].nouns.append(noun)  # "hygienist" -> dental hygienist
    for noun, names in SENSES.items():
        present = [by_name[n] for n in names if n in by_name]
        if not present:  # a renamed category must not silently drop a sense
            raise ValueError(f"SENSES[{noun!r}]: none of {names} is a category")
        pooled_rows[noun] = present
    rows: list[dict[str, object]] = []
    owned: set[str] = set(pooled_rows)
    for c in cats:
        forms = [
            n
            for n in c.nouns
            if usable(n) and n.lower() not in owned and primary.get(n.lower(), {c.name}) == {c.name}
        ]
        owned.update(f.lower() for f in forms)
        # A category with no noun of its own keeps its name, marked so it cannot clash.
        name = forms[0] if forms else f"{c.name.lower()} (category)"
        variants = []
        for f in forms[1:]:
            variants += [f, plural(f)]
        rows.append(
            {
                "occupation": name,
                "plural": plural(name) if forms else "",
                "pct_female": c.pct_female,
                "source": c.source,
                "year": c.year,
                "stat_category": c.name,
                "variants": "|".join(v for v in variants if v),
                "kind": "category" if forms else "unnamed",
            }
        )
    for noun, cs in sorted(pooled_rows.items()):
        pct, source, year = pooled(list({c.name: c for c in cs}.values()))
        names = sorted({c.name for c in cs if c.source == source})
        rows.append(
            {
                "occupation": noun,
                "plural": plural(noun),
                "pct_female": pct,
                "source": f"{source}; pooled by employment",
                "year": year,
                "stat_category": "; ".join(names),
                "variants": "",
                "kind": "pooled",
            }
        )
    check_unique(rows)
    rows.sort(key=lambda r: str(r["occupation"]).lower())
    return rows


def taken_forms(cats: list[Category]) -> set[str]:
    return {n.lower() for c in cats for n in c.nouns}


def check_unique(rows: list[dict[str, object]]) -> None:
    seen: dict[str, str] = {}
    for r in rows:
        forms = [r["occupation"], r["plural"], *str(r["variants"]).split("|")]
        for f in forms:
            f = str(f).lower()
            if f and f in seen and seen[f] != r["occupation"]:
                raise ValueError(f"form {f!r} in rows {seen[f]!r} and {r['occupation']!r}")
            if f:
                seen[f] = str(r["occupation"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = build()
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    kinds = defaultdict(int)
    for r in rows:
        kinds[(r["kind"], r["year"])] += 1
    print(f"wrote {len(rows)} rows to {args.out}: {dict(kinds)}")
    for p in (BLS_FILE, ACS_FILE):
        print(f"  {p.name} sha256 {sha256(p)}")


if __name__ == "__main__":
    main()
