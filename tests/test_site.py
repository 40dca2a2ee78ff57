"""`bench site`: the leaderboard website, built from the committed results/ and checked in headless Chromium.

The first half checks what the pages say (grouping, verify, inputs) without a browser; the second half opens
the built site from file:// in Debian's chromium (installed by `make test`, see the Makefile's
SYSTEM_PACKAGES) and checks it the way a visitor would meet it.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bench.cli import main as bench_main
from bench.core.results import append_row, read_table
from bench.report import tuned_board
from bench.report.compare import compare_table
from bench.site import boards as B
from bench.site import inputs
from bench.site.build import build

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
TABLE = RESULTS / "results.csv"


def bench(*args) -> int:
    return bench_main([str(a) for a in args])


def committed(out: Path):
    """Everything committed under results/, as `bench site` reads it by default (bench.site.inputs): every
    table and bundle folder, the studies, the reported table."""
    return build(out, inputs.default_tables(RESULTS), inputs.default_reports(RESULTS), [RESULTS / "studies"],
                 inputs.default_reported(RESULTS))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The site of the committed results, built once for the module."""
    out = tmp_path_factory.mktemp("site") / "site"
    return committed(out)


@pytest.fixture(scope="module")
def site(built) -> Path:
    return built.out


# ------------------------------------------------------------------------------------------ grouping

def _variant_table(path: Path) -> None:
    """The committed rows of one machine (the first EPYC board), plus copies that differ in one thing a board
    must never mix."""
    rows = [r for r in B.compare.records(read_table(TABLE)) if "EPYC" in B.hardware(r)]
    assert len(rows) >= 2
    variants = [
        {"dataset": "cifar10", "dataset_fingerprint": "f" * 64},          # official CIFAR-10, same recipe
        {"target": 0.94},                                                 # another target
        {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"},       # other hardware
        {"precision": "fp32"},                                            # same board, another group
    ]
    for row in rows:
        append_row(path, row)
    for i, change in enumerate(variants):
        for j, row in enumerate(rows):
            append_row(path, {**row, **change, "run_id": f"variant{i}-{j}"})


def test_boards_never_mix_datasets_targets_or_hardware(tmp_path):
    _variant_table(tmp_path / "t.csv")
    df = read_table(tmp_path / "t.csv")
    boards = B.boards(df, [])
    assert len(boards) == 4  # JPEG copy @80% CPU (bf16 + fp32 groups), official CIFAR-10, @94%, H100
    assert boards[0].official and boards[0].dataset == "cifar10"  # official CIFAR-10 listed first
    for board in boards:
        for g in board.groups:
            for m in g.members:
                assert (m["dataset"], m["dataset_fingerprint"], m["target"], B.hardware(m)) == \
                       (board.dataset, board.fingerprint, board.target, board.hardware)
    assert not any(b.official for b in boards[1:])
    assert sum(len(b.groups) for b in boards) == len(compare_table(df))
    jpeg80 = next(b for b in boards if b.target == 0.8 and "EPYC" in b.hardware and not b.official)
    assert sorted(g.row["precision"] for g in jpeg80.groups) == ["bf16", "fp32"]
    assert [g.row["rank"] for g in jpeg80.groups] == [1, 2]  # ranks restart on each board


def test_group_row_adds_olympic_mean_date_commits_and_bundles(tmp_path):
    df = read_table(TABLE)
    df = df[df["device_name"].str.contains("EPYC")]  # the first machine's cpu_quick rows: one group
    bundles = B.find_bundles([RESULTS / "reports"])
    [group] = B.groups(df, bundles)
    times = sorted(df["time_to_target_s"])
    assert group.row["runs"] == len(df) == 4
    assert group.olympic["value"] == pytest.approx(sum(times[1:-1]) / (len(times) - 2))
    assert group.date == max(df["timestamp"])[:10]
    dirty = df[df["git_dirty"]]["git_commit"].iloc[0][:7] + "+dirty"
    assert dirty in group.commits and len(group.commits) == df["git_commit"].nunique()
    run_dirs = {p.parents[2].name for p in (RESULTS / "reports").glob("*/runs/*/mllog.txt")
                if p.parent.name in set(df["run_id"])}
    assert {b.name for b in group.bundles} == run_dirs and group.verify_state == "pass"
    assert group.price_na  # CPU rows: cost recorded as 0, shown as not applicable


def test_a_bundle_that_fails_verify_is_flagged(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(RESULTS / "reports", reports)
    bad = next(b for b in sorted(reports.glob("cpu_quick-*")) if '"n_reached": 3' in (b / "summary.json").read_text())
    (bad / "summary.json").write_text((bad / "summary.json").read_text().replace('"n_reached": 3',
                                                                                '"n_reached": 2'))
    built = build(tmp_path / "site", [TABLE], [reports], [])
    [group] = [g for board in built.boards for g in board.groups if bad.name in {b.name for b in g.bundles}]
    assert group.verify_state == "fail"
    index = (tmp_path / "site" / "index.html").read_text()
    assert "FAILS" in index
    page = (tmp_path / "site" / "reports" / bad.name / "index.html").read_text()
    assert "FAILS" in page and "summary.json" in page and "MANIFEST" in page


def test_pages_show_report_env_recipe_and_downloads(site):
    for bundle in sorted((RESULTS / "reports").iterdir()):
        page = (site / "reports" / bundle.name / "index.html").read_text()
        title = (bundle / "report.md").read_text().splitlines()[0].lstrip("# ")
        assert f"<h1>{title}</h1>" in page                            # report.md rendered
        assert (bundle / "env.json").is_file() and "git.commit" in page   # env, flattened
        assert "<pre>" in page and "target:" in page                  # the resolved recipe
        for mllog in bundle.glob("runs/*/mllog.txt"):
            for name in ("mllog.txt", "dawnbench.tsv", "dawnbench.json"):
                assert f'href="runs/{mllog.parent.name}/{name}" download' in page
    study = (site / "studies" / "bottleneck_vs_widening_cpu.html").read_text()
    assert 'src="bottleneck_vs_widening_cpu/pareto.png"' in study and "Bottleneck vs widening" in study
    index = (site / "index.html").read_text()
    assert "not official CIFAR-10" in index and "https://" not in index and "http://" not in index


# ------------------------------------------------------------------------------------------ every kind of run

def test_defaults_read_every_table_and_bundle_folder_under_results(tmp_path, monkeypatch):
    tables = inputs.default_tables(RESULTS)
    assert tables[0] == TABLE and {RESULTS / "gan" / "results.csv", RESULTS / "record" / "results.csv"} <= set(tables)
    assert all(t.parent.parent == RESULTS or t == TABLE for t in tables)  # a study's own table stays on its page
    assert {RESULTS / "reports", RESULTS / "gan" / "reports", RESULTS / "record" / "reports"} <= \
        set(inputs.default_reports(RESULTS))
    monkeypatch.chdir(REPO)  # `bench site` with no inputs named reads results/ from where it runs
    assert bench("site", "--out", tmp_path / "s") == 0
    index = (tmp_path / "s" / "index.html").read_text()
    for bundle in [p for d in inputs.default_reports(RESULTS) for p in d.iterdir() if (p / "runs").is_dir()]:
        assert f'href="reports/{bundle.name}/index.html"' in index
    assert "time to fd_judge ≤ 250" in index and "airbench94_muon" in index
    assert (tmp_path / "s" / "reported.html").is_file()


def test_every_board_is_one_data_set_metric_target_and_hardware(built):
    keys = set()
    for board in built.boards:
        key = (board.dataset, board.fingerprint, board.metric, board.target, board.hardware)
        assert key not in keys
        keys.add(key)
        for g in board.groups:
            for m in g.members:
                assert (m["dataset"], m["dataset_fingerprint"], m.get("metric") or "test_acc", m["target"],
                        B.hardware(m)) == key
    # every measured row has a bundle, found by default, and it verifies
    assert [g.verify_state for b in built.boards for g in b.groups] == ["pass"] * sum(len(b.groups)
                                                                                       for b in built.boards)
    gan = [b for b in built.boards if b.metric == "fd_judge"]
    assert len(gan) == 1 and gan[0].mode == "min"
    assert gan[0].title.endswith("time to fd_judge ≤ 250 · 1x AMD EPYC (cpu)")
    assert {g.row["recipe"] for g in gan[0].groups} == {"wgan_cpu", "wgan_gp_cpu"}


def _gan_rows(path: Path, metric: str, finals: dict[str, float]) -> None:
    """Made-up GAN rows that missed their target, one group per recipe, each with its final score."""
    base = B.compare.records(read_table(RESULTS / "gan" / "results.csv"))[0]
    for i, (recipe, final) in enumerate(finals.items()):
        append_row(path, {**base, "run_id": f"gan-{metric}-{i}", "recipe": recipe, "recipe_hash": recipe,
                          "metric": metric, "status": "missed", "time_to_target_s": None,
                          "best_metric": final, "final_metric": final,
                          "target": 250.0 if metric != "is_judge" else 5.0})


def test_lower_is_better_scores_order_a_board_the_right_way(tmp_path):
    path = tmp_path / "t.csv"
    _gan_rows(path, "fd_judge", {"mid": 300.0, "best": 260.0, "worst": 400.0})
    _gan_rows(path, "is_judge", {"low": 1.5, "high": 3.0, "middle": 2.0})
    boards = {b.metric: b for b in B.boards(read_table(path), [])}
    fd, isj = boards["fd_judge"], boards["is_judge"]
    assert [g.row["recipe"] for g in fd.groups] == ["best", "mid", "worst"]     # lower fd_judge first
    assert [g.row["recipe"] for g in isj.groups] == ["high", "middle", "low"]   # higher is_judge first
    assert all(g.row["rank"] is None for g in fd.groups + isj.groups)           # none reached: none ranked
    assert fd.title.endswith("time to fd_judge ≤ 250 · 1x AMD EPYC (cpu)") and "is_judge ≥ 5" in isj.title
    assert fd.anchor != isj.anchor and re.fullmatch(r"[A-Za-z0-9_.-]+", fd.anchor)
    build(tmp_path / "site", [path], [], [], [])
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'data-better="min"' in index and 'data-better="max"' in index and "best final fd_judge" in index


def test_a_gan_bundle_page_shows_the_grid_at_the_target_and_both_baselines(site):
    for bundle in sorted((RESULTS / "gan" / "reports").iterdir()):
        summary = json.loads((bundle / "summary.json").read_text())
        page = (site / "reports" / bundle.name / "index.html").read_text()
        section = page.split('<section id="samples">')[1].split("</section>")[0]
        for run in summary["runs"]:
            hit = next(e for e in run["evals"] if e["elapsed_s"] == run["time_to_target_s"])
            rid = run["run_id"]
            assert f'src="runs/{rid}/{hit["samples"]}"' in section and f"epoch {hit['epoch']}" in section
            for name in ("untrained", "real"):
                assert f'src="runs/{rid}/samples/{name}.png"' in section
                assert f"{run['baselines'][name]['fd_judge']:.4g}" in section
        assert (site / "reports" / bundle.name / "runs" / run["run_id"] / hit["samples"]).is_file()
    classifier = next((RESULTS / "reports").iterdir()).name
    assert 'id="samples"' not in (site / "reports" / classifier / "index.html").read_text()


def test_a_gan_board_shows_its_race_plot(built, site):
    [gan] = [b for b in built.boards if b.metric == "fd_judge"]
    png = built.extras.races[gan.anchor]
    assert (site / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (site / "index.html").read_text()
    section = index.split(f'id="{gan.anchor}"')[1].split("</section>")[0]
    assert f'src="{png}"' in section and "bench race" in section
    assert all(b.anchor not in built.extras.races for b in built.boards if b.metric == "test_acc")


def test_a_gan_boards_race_plot_draws_the_boards_metric_and_target(tmp_path, monkeypatch):
    """The committed GAN board ranks by fd_judge against a target of 250: its race plot draws fd_judge, every
    run's evaluations, and the target line (not is_judge, which the board does not rank by)."""
    from bench.report import plots
    from bench.site import extras as X

    df = B.read_tables([RESULTS / "gan" / "results.csv"])
    [board] = [b for b in B.boards(df, B.find_bundles([RESULTS / "gan" / "reports"])) if b.metric != "test_acc"]
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    assert board.anchor in X.race_plots(tmp_path, [board])
    [ax] = figures[0].axes
    assert board.metric in ax.get_ylabel() and board.metric in ax.get_title() and "is_judge" not in ax.get_ylabel()
    drawn = {tuple(line.get_ydata()) for line in ax.get_lines()}
    assert (board.target, board.target) in drawn  # the target line
    for bundle in {b.name: b for g in board.groups for b in g.bundles}.values():
        for run in json.loads((bundle.path / "summary.json").read_text())["runs"]:
            assert tuple(e[board.metric] for e in run["evals"]) in drawn


def test_each_recipe_has_a_page_with_its_history(built, site):
    from bench.report import history

    df = B.read_tables(inputs.default_tables(RESULTS))
    rows = B.compare.records(df)
    for recipe in sorted(set(df["recipe"])):
        page = (site / "recipes" / f"{recipe}.html").read_text()
        for s in history.series(rows, recipe):
            section = page.split(f'id="{s.slug}"')[1].split("</section>")[0]
            assert f'src="{recipe}/{s.slug}.png"' in section and (site / "recipes" / recipe / f"{s.slug}.png").is_file()
            labels = re.findall(r"<td class=\"nowrap\"><code>([^<]+)</code></td>", section)
            assert labels == [c.label for c in s.commits]
        assert f'href="recipes/{recipe}.html"' in (site / "index.html").read_text()
    cpu = (site / "recipes" / "cpu_quick.html").read_text()
    assert cpu.index("69b55a4+dirty") < cpu.index("2054f80")  # 27 Nov 11:52 before 12:03
    assert "bench compare --by commit cpu_quick" in cpu


# ------------------------------------------------------------------------------------------ the command

def test_bad_inputs_name_the_flag_and_the_fix(tmp_path, capsys):
    assert bench("site", "--out", tmp_path / "s", "--results", tmp_path / "missing.csv") == 2
    assert "--results" in capsys.readouterr().err
    assert bench("site", "--out", tmp_path / "s", "--results", TABLE, "--reports", tmp_path / "none") == 2
    assert "--reports" in capsys.readouterr().err
    assert bench("site", "--results", TABLE) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    assert bench("site", "--out", precious, "--results", TABLE, "--reports", RESULTS / "reports") == 2
    assert "not made by `bench site`" in capsys.readouterr().err
    assert [p.name for p in precious.iterdir()] == ["keep.txt"]  # refused before touching anything
    assert not list(tmp_path.glob(".*building*"))


def test_rebuild_replaces_an_earlier_site(tmp_path, capsys):
    out = tmp_path / "s"
    args = ("site", "--out", out, "--results", TABLE, "--reports", RESULTS / "reports", "--studies",
            RESULTS / "studies")
    assert bench(*args) == 0
    (out / "stale.html").write_text("from an older build")
    assert bench(*args) == 0
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
    n = len([p for p in (RESULTS / "studies").glob("*.md") if p.name.lower() != "readme.md"])
    bundles = len([p for p in (RESULTS / "reports").iterdir() if (p / "runs").is_dir()])
    groups = len(compare_table(read_table(TABLE)))
    assert (f"{groups} result group(s), {bundles} report bundle(s) (0 failing bench verify), {n} stud"
            f"{'y' if n == 1 else 'ies'}") in capsys.readouterr().out


def test_serve_answers_on_localhost(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bench", "site", "--serve", "--port", "0", "--out", tmp_path / "s",
                             "--results", TABLE, "--reports", RESULTS / "reports", "--studies", RESULTS / "studies"],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        url = None
        for line in proc.stdout:  # the URL line comes after the build summary
            m = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "bench site --serve never printed its URL"
        with urllib.request.urlopen(url + "index.html", timeout=30) as r:
            assert r.status == 200 and b"Time to target" in r.read()
        report = next((tmp_path / "s" / "reports").iterdir()).name
        with urllib.request.urlopen(f"{url}reports/{report}/report.md", timeout=30) as r:
            assert r.read() == (RESULTS / "reports" / report / "report.md").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_registering_the_command_imports_nothing_heavy():
    code = ("import sys, bench.cli.site; "
            "print(sorted(m for m in ('torch', 'pandas', 'jinja2', 'markdown_it') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ in a browser

@pytest.fixture(scope="module")
def browser():
    from site_browser import CHROMEDRIVER, CHROMIUM, chromium

    for tool in (CHROMIUM, CHROMEDRIVER):  # make test installs both; missing means a broken set-up
        assert Path(tool).is_file(), f"{tool} missing: `make test` installs Debian's chromium and chromium-driver"
    with chromium() as driver:
        yield driver


def _open(browser, path: Path):
    from site_browser import console_errors

    console_errors(browser)  # drop what an earlier page left
    browser.get(path.as_uri())
    return browser


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _local_targets(browser) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href], img[src], link[href], script[src]'))"
        ".map(e => e.href || e.src);")


def test_no_console_errors_and_every_local_link_resolves(browser, site):
    from site_browser import console_errors

    pages = _pages(site)
    bundles = [p for d in inputs.default_reports(RESULTS) for p in d.iterdir() if (p / "runs").is_dir()]
    recipes = {r for t in inputs.default_tables(RESULTS) for r in read_table(t)["recipe"]}
    studies = [p for p in (RESULTS / "studies").glob("*.md") if p.name.lower() != "readme.md"]
    tuned = tuned_board.find([RESULTS / "tuning"])
    # index, bundles, the studies, the reported board, a page per recipe, a page per tuned result
    assert len(pages) == 1 + len(bundles) + len(studies) + 1 + len(recipes) + len(tuned)
    assert {p.name for p in pages} >= {"reported.html"} | {f"{r}.html" for r in recipes}
    checked = 0
    for page in pages:
        _open(browser, page)
        assert browser.execute_script("return document.readyState") == "complete"
        images = browser.execute_script("return Array.from(document.images).map(i => [i.src, i.naturalWidth])")
        assert all(width > 0 for _, width in images), f"{page}: image(s) did not load: {images}"
        assert console_errors(browser) == [], f"{page}: console errors"
        for url in _local_targets(browser):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "data":
                continue
            assert parts.scheme == "file", f"{page}: {url} leaves the site (no network allowed)"
            target = Path(urllib.parse.unquote(parts.path))
            assert target.is_file(), f"{page}: link to {url} resolves to no file"
            assert site in target.parents, f"{page}: {url} points outside the site"
            if parts.fragment:
                assert f'id="{parts.fragment}"' in target.read_text(), f"{page}: no anchor for {url}"
            checked += 1
    assert checked > 50  # the pages really carry links: plots, downloads, back links


def test_one_table_row_per_result_group(browser, site):
    _open(browser, site / "index.html")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.board tbody tr'))"
        ".map(r => r.cells[1].getAttribute('data-sort'));")
    df = B.read_tables(inputs.default_tables(RESULTS))
    expected = [g.row["recipe"] for b in B.boards(df, []) for g in b.groups]
    assert rows == expected and len(rows) == len(compare_table(df))


def _column(browser, index: int) -> list[str]:
    return browser.execute_script(
        f"return Array.from(document.querySelectorAll('table.sortable tbody tr'))"
        f".map(r => r.cells[{index}].getAttribute('data-sort') || r.cells[{index}].textContent.trim());")


def test_clicking_a_header_sorts_the_table(browser, site):
    from selenium.webdriver.common.by import By

    # the study's table has four groups (the committed leaderboard has one: nothing to reorder)
    _open(browser, site / "studies" / "bottleneck_vs_widening_cpu.html")
    headers = browser.find_elements(By.CSS_SELECTOR, "table.sortable thead th")
    names = [h.text.split(" ")[0] for h in headers]
    recipe, time = names.index("recipe"), names.index("time")
    before = [float(v) for v in _column(browser, time)]
    assert len(before) >= 3 and before == sorted(before)  # built fastest first
    recipes_before = _column(browser, recipe)
    headers[recipe].click()
    recipes = _column(browser, recipe)
    assert recipes == sorted(recipes_before) != recipes_before  # the by-time order is not alphabetical
    assert headers[recipe].get_attribute("aria-sort") == "ascending"
    headers[time].click()
    headers[time].click()  # second click: descending
    after = [float(v) for v in _column(browser, time)]
    assert after == sorted(before, reverse=True)
    assert headers[time].get_attribute("aria-sort") == "descending"
    assert headers[recipe].get_attribute("aria-sort") is None


def test_a_score_column_sorts_the_best_first_whichever_way_is_better(browser, built, site):
    from selenium.webdriver.common.by import By

    _open(browser, site / "index.html")
    [gan] = [b for b in built.boards if b.metric == "fd_judge"]
    for board, reverse in ((gan, False), (built.boards[0], True)):  # fd_judge: lowest first; accuracy: highest
        table = browser.find_element(By.ID, board.anchor).find_element(By.CSS_SELECTOR, "table.sortable")
        header = table.find_element(By.CSS_SELECTOR, "th[data-better]")
        header.click()
        col = [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")].index(header.text)
        values = browser.execute_script(
            "return Array.from(arguments[0].tBodies[0].rows).map(r => r.cells[arguments[1]].getAttribute('data-sort'))"
            ".filter(v => v !== '').map(parseFloat);", table, col)
        assert values == sorted(values, reverse=reverse) and len(values) == len(board.groups)
        assert header.get_attribute("aria-sort") == ("descending" if reverse else "ascending")
        if board is gan:  # built fastest first (wgan_cpu 247.1, then wgan_gp_cpu 242.1): the click reorders
            assert [g.row["score_best"] for g in gan.groups] != values


def test_typing_filters_rows(browser, site):
    from selenium.webdriver.common.by import By

    _open(browser, site / "studies" / "bottleneck_vs_widening_cpu.html")
    box = browser.find_element(By.ID, "filter")
    box.send_keys("funnel1")
    visible = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.sortable tbody tr')).filter(r => !r.hidden)"
        ".map(r => r.cells[1].getAttribute('data-sort'));")
    assert visible == ["bottleneck_funnel1"]
    assert browser.find_element(By.ID, "filter-count").text == "1 of 4 rows"


def test_readable_at_phone_width_and_screenshots(browser, site, tmp_path):
    from site_browser import DESKTOP, PHONE, screenshot, set_viewport

    try:
        for page in _pages(site):
            for width, height in (PHONE, DESKTOP):
                set_viewport(browser, width, height)
                _open(browser, page)
                page_width = browser.execute_script("return document.documentElement.scrollWidth")
                assert page_width <= width, f"{page} at {width} px: the page is {page_width} px wide"
                font = browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
                assert font >= 14, f"{page}: body text {font}px"
        set_viewport(browser, *PHONE)
        _open(browser, site / "index.html")
        # the leaderboard's first columns are on screen; wider ones scroll inside the table, not the page
        first = browser.execute_script(
            "var c = document.querySelector('section.board tbody tr').cells[1].getBoundingClientRect();"
            "return [c.left, c.right];")
        assert 0 <= first[0] and first[1] <= PHONE[0]
        for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
            set_viewport(browser, *size)
            _open(browser, site / "index.html")
            png = screenshot(browser, tmp_path / f"{name}.png")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert int.from_bytes(png.read_bytes()[16:20], "big") == size[0]  # IHDR width
    finally:
        set_viewport(browser, *DESKTOP)
