"""What the field reported, beside what we measured (bench.report.reported, bench.site.extras).

The links from measured recipes to reported rows are data (bench/report/reported_links.yaml): every recipe it
names exists, every source names exactly one row of the committed reported table. On the site the reported rows
have their own board, labelled, with no rank, and never enter a measured board."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.core.results import append_row, read_table
from bench.report import reported as R
from bench.site import boards as B
from bench.site.build import build

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
REPORTED = RESULTS / "reported" / "cifar10_reported.csv"


def recipe_names() -> dict[str, Path]:
    from bench.recipe import load

    from bench.recipe import SPACE_FILES

    return {load(p).name: p for p in sorted((REPO / "recipes").rglob("*.yaml"))
            if not p.name.startswith("_") and p.name not in SPACE_FILES}


# ------------------------------------------------------------------------------------------ the data

def test_every_link_names_a_recipe_and_exactly_one_reported_row():
    links = R.read_links()
    rows = R.read_tables([REPORTED])
    names = recipe_names()
    assert {link.recipe for link in links} >= {"wrn22", "wrn22_8gpu", "airbench94_muon"}
    for link in links:
        assert link.recipe in names, f"{link.recipe}: no such recipe under recipes/"
        assert sum(r["source"] == link.source for r in rows) == 1, link.source
        assert link.why
    assert R.link_problems(links, rows) == []
    by_recipe = R.counterparts(links, rows)
    assert by_recipe["wrn22"][0]["source"].endswith("/fastai_pytorch_single_volta.json")
    assert by_recipe["wrn22_8gpu"][0]["source"].endswith("/fastai_pytorch.json")
    assert by_recipe["airbench94_muon"][0]["model"] == "airbench94_muon"
    # each linked recipe's own provenance names the result it links to
    for recipe, want in (("wrn22", "fastai_pytorch_single_volta"), ("wrn22_8gpu", "fastai_pytorch"),
                         ("airbench94_muon", "2.59 s")):
        assert want in names[recipe].read_text(), recipe


def test_the_reported_table_reads_typed_and_keyed():
    rows = R.read_table(REPORTED)
    assert len(rows) == len(REPORTED.read_text().splitlines()) - 1
    fastai = next(r for r in rows if r["source"].endswith("/fastai_pytorch.json"))
    assert fastai["time_to_94_s"] == pytest.approx(173.96) and fastai["gpus"] == 8 and fastai["cost_usd"] == 1.1829
    assert len({r["anchor"] for r in rows}) == len(rows) and all(re.fullmatch(r"reported-[0-9a-f]{10}", r["anchor"])
                                                                  for r in rows)


def test_bad_reported_tables_and_links_are_named(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,2\n")
    with pytest.raises(BenchError, match="no `source` column"):
        R.read_table(plain)
    empty = tmp_path / "empty.csv"
    empty.write_text("kind,source,time_to_94_s\ndawnbench,,1\n")
    with pytest.raises(BenchError, match=r"empty.csv:2: empty `source`"):
        R.read_table(empty)
    word = tmp_path / "word.csv"
    word.write_text("kind,source,time_to_94_s\ndawnbench,x,fast\n")
    with pytest.raises(BenchError, match=r"word.csv:2 time_to_94_s: 'fast' is not a number"):
        R.read_table(word)
    with pytest.raises(BenchError, match="also in"):
        R.read_tables([REPORTED, REPORTED])
    links = tmp_path / "links.yaml"
    links.write_text("links:\n  - recipe: wrn22\n  - source: x\n")
    with pytest.raises(BenchError, match=r"links\[0\]: missing source"):
        R.read_links(links)
    links.write_text("links:\n  - {recipe: wrn22, source: nowhere}\n  - {recipe: wrn22, source: nowhere}\n")
    problems = R.link_problems(R.read_links(links), R.read_table(REPORTED))
    assert problems == ["wrn22: source 'nowhere' is not in the reported table(s)",
                        "wrn22: linked to 'nowhere' more than once"]


# ------------------------------------------------------------------------------------------ the site

@pytest.fixture(scope="module")
def measured_wrn22(tmp_path_factory):
    """The committed tables plus one made-up measured wrn22 group and one wrn22_8gpu group, and the site."""
    tmp = tmp_path_factory.mktemp("reported")
    table = tmp / "results.csv"
    base = B.compare.records(read_table(RESULTS / "results.csv"))[0]
    for i, (recipe, t) in enumerate([("wrn22", 400.0), ("wrn22", 410.0), ("wrn22_8gpu", 170.0)]):
        append_row(table, {**base, "run_id": f"made-up-{i}", "recipe": recipe, "recipe_hash": recipe,
                           "time_to_target_s": t, "target": 0.94})
    site = tmp / "site"
    built = build(site, [table, RESULTS / "record" / "results.csv"], [], [], [REPORTED])
    return built, site


def test_reported_rows_have_their_own_board_and_no_rank(measured_wrn22):
    built, site = measured_wrn22
    rows = R.read_table(REPORTED)
    measured = {g.row["recipe"] for b in built.boards for g in b.groups}
    assert measured == {"wrn22", "wrn22_8gpu", "airbench94_muon"}  # nothing reported entered a measured board
    page = (site / "reported.html").read_text()
    assert "Reported by their authors, not reproduced here" in page and "Nothing on this page was measured" in page
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert heads and not any(h.strip() in ("#", "rank") for h in heads)
    for r in rows:
        assert f'<tr id="{r["anchor"]}">' in page
    index = (site / "index.html").read_text()
    boards_html = index.split('<h2 id="reported">')[0]
    for r in rows:  # no reported source in a measured board
        assert r["source"] not in boards_html
    assert f"{len(rows)} result(s) that other projects reported" in index


def test_a_measured_row_links_to_its_reported_counterpart_and_back(measured_wrn22):
    built, site = measured_wrn22
    rows = {r["source"]: r for r in R.read_table(REPORTED)}
    index = (site / "index.html").read_text()
    page = (site / "reported.html").read_text()
    for recipe, source in (("wrn22", "fastai_pytorch_single_volta.json"), ("wrn22_8gpu", "fastai_pytorch.json"),
                           ("airbench94_muon", "airbench94_muon.py (header)")):
        [row] = [r for s, r in rows.items() if s.endswith(source)]
        assert f'href="reported.html#{row["anchor"]}"' in index, recipe
        # the reported row names the measured recipe's page, and that page names the reported row
        tr = page.split(f'<tr id="{row["anchor"]}">')[1].split("</tr>")[0]
        assert f'href="recipes/{recipe}.html">{recipe}</a>' in tr
        recipe_page = (site / "recipes" / f"{recipe}.html").read_text()
        assert f'href="../reported.html#{row["anchor"]}"' in recipe_page and "not reproduced here" in recipe_page
    assert built.extras.link_problems == []


def test_a_cut_row_is_refused_with_its_line(tmp_path):
    """The reported table goes through the one CSV reader (bench.core.results.read_records): a row with fewer
    cells than the header is named by its line, not read with blanks."""
    from bench.core.errors import BenchError
    from bench.report.reported import read_table

    table = tmp_path / "r.csv"
    table.write_text("kind,source,time_to_94_s\nrecord,a.md,2.5\nrecord,b.md\n")
    with pytest.raises(BenchError, match=r"r\.csv:3: malformed row"):
        read_table(table)
