"""kind: external where every other kind goes: a family of external recipes through `bench sweep --slurm` (each
job referees its command on the tests' own SLURM cluster), then `bench compare` and `bench site` on what
landed, with the bundle verified like any other."""
from pathlib import Path

import pytest

from bench import recipe as recipes
from bench.core.results import read_table
from bench.recipe.external import with_code

ROOT = Path(__file__).resolve().parents[1]

RECIPE = """name: toy_ext_{tag}
kind: external
provenance: {{source: "tests: recipes/examples/toy_train.py", reported: "none"}}
data: {{source: toy-blobs}}
target: {{metric: test_acc, value: 0.9}}
external:
  command: ["{{python}}", "recipes/examples/toy_train.py", "--epochs", "{epochs}", "--seed", "0"]
  cwd: "{root}"
  parse: mllog
  code: [recipes/examples/toy_train.py]
  timeout_s: 120
hardware: {{device: cpu}}
runs: 1
"""


def family(tmp_path: Path) -> Path:
    fam = tmp_path / "ext_family"
    fam.mkdir()
    for tag, epochs in (("a", 8), ("b", 9)):  # seed 0 reaches 0.9 at epoch 6
        (fam / f"{tag}.yaml").write_text(RECIPE.format(tag=tag, epochs=epochs, root=ROOT))
    return fam


@pytest.mark.slow
def test_an_external_family_runs_under_slurm_and_shows_like_any_recipe(slurm_cluster, tmp_path, monkeypatch, capsys):
    from test_cluster_sweep import run, sweep_args

    from bench.cli import main
    from bench.site.build import build
    from bench.studies import cluster_sweep

    fam = family(tmp_path)
    for key, value in slurm_cluster.env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cluster_sweep, "POLL_S", 0.5)
    monkeypatch.chdir(tmp_path)
    assert run(sweep_args(tmp_path, fam, "--slurm", "--wait")) == 0, capsys.readouterr().out
    df = read_table(tmp_path / "results.csv")
    assert sorted(df["recipe"]) == ["toy_ext_a", "toy_ext_b"]
    assert set(df["kind"]) == {"external"} and set(df["status"]) == {"reached"}
    assert set(df["timed_from"]) == {"run start line"}
    for name in ("a", "b"):
        row = df[df["recipe"] == f"toy_ext_{name}"].iloc[0]
        # the hash of the recipe with its code file's sha256 filled in, as every job computed it
        assert row["recipe_hash"] == with_code(recipes.load(str(fam / f"{name}.yaml"))).hash
        assert 0 < row["time_to_target_s"] < row["wall_s"]
    bundles = sorted((tmp_path / "reports").iterdir())
    assert len(bundles) == 2
    for b in bundles:
        assert main(["verify", str(b)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["compare", "--results", str(tmp_path / "results.csv"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "toy_ext_a" in out and "toy_ext_b" in out
    site = tmp_path / "site"
    build(site, [tmp_path / "results.csv"], [tmp_path / "reports"], [], reported=[])
    index = (site / "index.html").read_text()
    assert "toy_ext_a" in index and "toy_ext_b" in index and "declared:toy-blobs" in index
    pages = [p.read_text() for p in (site / "reports").glob("toy_ext_*/index.html")]
    assert len(pages) == 2 and all("<code>bench verify</code> passes" in page for page in pages)
