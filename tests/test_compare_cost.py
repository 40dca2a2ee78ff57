"""One rule for an unknown cost, in `bench compare` and on the site: compare.price_na.

Rows written before costs became empty-when-unknown recorded a CPU run as costing $0 (price source "n/a (CPU)",
no price): `bench compare` printed $0.0000 for them while the site printed n/a. Both now ask compare.price_na."""
import re

import pytest

from bench.cli import main
from bench.core.prices import CPU_SOURCE, LEGACY_CPU_SOURCE
from bench.core.results import append_row, read_table
from bench.report import compare
from bench.site import boards as B

ROWS = {  # recipe: the cost columns of its one run
    "legacy_cpu": {"device_name": "Old CPU", "cost_usd": 0.0, "price_usd_per_hour": None,
                   "price_source": LEGACY_CPU_SOURCE},
    "new_cpu": {"device_name": "New CPU", "cost_usd": None, "price_usd_per_hour": None, "price_source": CPU_SOURCE},
    "priced_gpu": {"device_name": "Some GPU", "cost_usd": 0.5, "price_usd_per_hour": 2.0,
                   "price_source": "prices.yaml: some cloud"},
    "unpriced_gpu": {"device_name": "Rare GPU", "cost_usd": None, "price_usd_per_hour": None,
                     "price_source": "no price for Rare GPU in bench/core/prices.yaml; add one"},
}


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "results.csv"
    for i, (recipe, cost) in enumerate(ROWS.items()):
        append_row(path, {"run_id": f"run{i}", "status": "reached", "recipe": recipe, "recipe_hash": f"h{i}",
                          "dataset_fingerprint": "f" * 64, "seed": 0, "target": 0.8, "time_to_target_s": 10.0 + i,
                          "wall_s": 12.0 + i, "best_acc": 0.81, "final_acc": 0.81, "precision": "bf16",
                          "device_count": 1, "world_size": 1, "gpu_hours": 0.25, **cost})
    return path


def test_the_rule(table):
    rows = {r["recipe"]: r for r in compare.compare_table(read_table(table))}
    assert {k: r["price_na"] for k, r in rows.items()} == {"legacy_cpu": True, "new_cpu": True, "priced_gpu": False,
                                                           "unpriced_gpu": False}
    assert rows["legacy_cpu"]["cost_mean"] is None  # the $0 it was recorded at is no cost
    assert rows["priced_gpu"]["cost_mean"] == 0.5 and rows["unpriced_gpu"]["cost_mean"] is None
    assert not compare.price_na([])


def test_compare_prints_a_legacy_cpu_row_as_the_site_does(table, capsys):
    assert main(["compare", "--results", str(table), "--no-plot"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if re.match(r"\d+ ", line)}
    assert "n/a (CPU)" in lines["legacy_cpu"] and "$0.0000" not in lines["legacy_cpu"]
    assert "n/a (CPU)" in lines["new_cpu"]
    assert "$0.5000" in lines["priced_gpu"]
    assert "n/a" not in lines["unpriced_gpu"] and "$" not in lines["unpriced_gpu"]  # unknown, not "no price applies"


def test_the_site_asks_the_same_rule(table, tmp_path, monkeypatch):
    from bench.site.build import build

    want = {r["recipe"]: r["price_na"] for r in compare.compare_table(read_table(table))}
    assert {g.row["recipe"]: g.price_na for g in B.groups(read_table(table), [])} == want
    build(tmp_path / "site", [table], [], [])
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count(">n/a (CPU)</td>") == 2 and "$0.0000" not in index and "$0.5000" in index
    monkeypatch.setattr(compare, "price_na", lambda runs: False)  # the site's n/a follows the one function
    assert not any(g.price_na for g in B.groups(read_table(table), []))
