"""`bench import dawnbench`: DAWNBench's rule (the hours of the first TSV row at top1Accuracy >= 94, x 3600; cost
= those hours x costPerHour) on entries written here in the real files' shapes (a BOM, CRLF, no final newline,
epochs from 0 or 1, fractional epochs, float noise), bad input, the command line, the round trip through our own
exports (bench/report/exports.py), and the committed table of reported results. No file of dawn-bench-entries
is used: the repository has no licence."""
import csv
import json
import math
from pathlib import Path

import pytest

from bench.cli import main
from bench.core.errors import BenchError
from bench.report import dawnbench_import as dawn

REPO = Path(__file__).resolve().parent.parent
HEADER = "epoch\thours\ttop1Accuracy"
# four epochs from 1; the third is the first at 94%
ROWS = [(1, 0.01, 80.5), (2, 0.02, 91.25), (3, 0.03, 94.08), (4, 0.04, 94.5)]
DOC = {"version": "v1.0", "author": "Team Example", "authorEmail": "someone@example.org", "framework": "pytorch 9",
       "codeURL": "https://example.org/code", "model": "Net 9", "hardware": "2 * V100 (Test Cloud)",
       "costPerHour": 6.12, "timestamp": "2018-11-06", "misc": {}}


def entry(folder: Path, name: str = "team_net9_2v100_pytorch", rows=ROWS, doc=DOC, bom: bool = False,
          crlf: bool = False, final_newline: bool = True, header: str | None = HEADER) -> Path:
    """`<name>.json` + `<name>.tsv` in `folder`, as a DAWNBench entry writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(doc, indent=4), encoding="utf-8")
    lines = ([header] if header is not None else []) + ["\t".join(str(c) for c in r) for r in rows]
    end = "\r\n" if crlf else "\n"
    text = ("\ufeff" if bom else "") + end.join(lines) + (end if final_newline else "")
    (folder / f"{name}.tsv").write_bytes(text.encode("utf-8"))
    return folder / f"{name}.json"


def one(folder: Path) -> dawn.Entry:
    entries, warnings = dawn.read_dir(folder)
    assert len(entries) == 1 and warnings == [], warnings
    return entries[0]


# ------------------------------------------------------------------------------------------ the rule

def test_time_and_cost_are_the_first_row_at_94(tmp_path):
    e = one(entry(tmp_path).parent)
    assert e.time_s == pytest.approx(0.03 * 3600) and e.cost_usd == pytest.approx(0.03 * 6.12)
    assert (e.top1, e.epochs, e.best_top1, e.cost_per_hour, e.gpus) == (94.08, 3, 94.5, 6.12, 2)
    assert (e.team, e.model, e.hardware, e.framework, e.date) == (
        "Team Example", "Net 9", "2 * V100 (Test Cloud)", "pytorch 9", "2018-11-06")
    assert e.source == "team_net9_2v100_pytorch.json"


@pytest.mark.parametrize("shape", [{"bom": True}, {"crlf": True}, {"final_newline": False},
                                   {"bom": True, "crlf": True, "final_newline": False}],
                         ids=["bom", "crlf", "no-final-newline", "all-three"])
def test_file_shapes_give_the_same_entry(tmp_path, shape):
    assert one(entry(tmp_path / "shaped", **shape).parent) == one(entry(tmp_path / "plain").parent)


def test_a_last_row_without_newline_still_counts(tmp_path):
    """The first 94% row is the last line, and the file has no final newline (as Page's TSV)."""
    e = one(entry(tmp_path, rows=ROWS[:3], final_newline=False, crlf=True).parent)
    assert e.time_s == pytest.approx(0.03 * 3600) and e.epochs == 3


def test_epochs_from_0_or_1_give_the_same_time_and_epoch_count(tmp_path):
    from_zero = one(entry(tmp_path / "zero", rows=[(ep - 1, h, a) for ep, h, a in ROWS]).parent)
    from_one = one(entry(tmp_path / "one").parent)
    assert (from_zero.time_s, from_zero.epochs, from_zero.top1) == (from_one.time_s, from_one.epochs, from_one.top1)
    assert from_zero.epochs == 3 and from_zero.from_zero and not from_one.from_zero
    assert dawn.csv_row(from_zero)["note"] == "TSV numbers epochs from 0" and dawn.csv_row(from_one)["note"] == ""


def test_fractional_epochs(tmp_path):
    """TensorFlow entries log epochs as 1.00096, 2.00192, ...: numbers, not a reason to skip."""
    rows = [(1.00096, 0.0198, 45.59), (2.00192, 0.0384, 93.9), (3.00288, 0.0571, 94.01)]
    e = one(entry(tmp_path, rows=rows).parent)
    assert e.time_s == pytest.approx(0.0571 * 3600) and e.epochs == 3.00288
    assert dawn.csv_row(e)["epochs"] == "3"


@pytest.mark.parametrize("top1, reaches", [(94.02000000000001, True), (94, True), (94.0, True),
                                           (93.99999999999999, True), (93.99999, False), (93.9, False)])
def test_at_least_94_with_float_noise(tmp_path, top1, reaches):
    """At least 94 counts; 93.99999999999999 is 94 written through a float (0.94 * 100 in some code), while
    93.99999 is an accuracy below 94."""
    e = one(entry(tmp_path, rows=[(1, 0.01, 90.0), (2, 0.02, top1), (3, 0.03, 94.5)]).parent)
    assert e.time_s == pytest.approx((0.02 if reaches else 0.03) * 3600)


def test_an_entry_that_never_reaches_94_is_listed_last_with_no_time(tmp_path):
    entry(tmp_path, "fast", rows=[(1, 0.5, 94.1)])
    entry(tmp_path, "never", rows=[(1, 0.01, 90.0), (2, 0.02, 93.99999)])
    entry(tmp_path, "slow", rows=[(1, 0.9, 94.0)])
    entries, warnings = dawn.read_dir(tmp_path)
    assert [e.source for e in entries] == ["fast.json", "slow.json", "never.json"] and warnings == []
    never = dawn.csv_row(entries[-1])
    assert (never["time_to_94_s"], never["cost_usd"], never["epochs"], never["top1_at_94"], never["best_top1"]) == (
        "", "", "", "", "93.99999")


def test_without_costperhour_the_cost_is_unknown_not_zero(tmp_path):
    e = one(entry(tmp_path, doc={k: v for k, v in DOC.items() if k != "costPerHour"}).parent)
    assert e.time_s == pytest.approx(108.0) and e.cost_per_hour is None and e.cost_usd is None
    assert (dawn.csv_row(e)["cost_per_hour_usd"], dawn.csv_row(e)["cost_usd"]) == ("", "")


def test_a_checkout_reads_cifar10_training_only(tmp_path):
    """In a dawn-bench-entries checkout only CIFAR10/train is read: inference and ImageNet are other tasks."""
    entry(tmp_path / "CIFAR10" / "train")
    (tmp_path / "CIFAR10" / "inference").mkdir(parents=True)
    (tmp_path / "CIFAR10" / "inference" / "x.json").write_text(json.dumps({"latency": 1.0, "accuracy": 94.1}))
    entry(tmp_path / "ImageNet" / "train", "imagenet", rows=[(1, 0.1, 70.0, 93.1)],
          header="epoch\thours\ttop1Accuracy\ttop5Accuracy")
    e = one(tmp_path)
    assert e.source == "CIFAR10/train/team_net9_2v100_pytorch.json"


def test_inference_and_other_tasks_in_a_folder_are_skipped_with_a_warning(tmp_path):
    entry(tmp_path)
    (tmp_path / "inference.json").write_text(json.dumps({**DOC, "latency": 43.45, "cost": 1e-6, "accuracy": 94.45}))
    entry(tmp_path, "imagenet", rows=[(1, 0.1, 70.0, 93.1)], header="epoch\thours\ttop1Accuracy\ttop5Accuracy")
    entry(tmp_path, "squad", rows=[(1, 0.1, 70.0)], header="epoch\thours\tf1Score")
    entries, warnings = dawn.read_dir(tmp_path)
    assert [e.source for e in entries] == ["team_net9_2v100_pytorch.json"]
    assert warnings == [
        f"{tmp_path / 'imagenet.tsv'}:1: columns epoch hours top1Accuracy top5Accuracy: not a CIFAR-10 training "
        f"entry; entry skipped",
        f"{tmp_path / 'inference.json'}: an inference entry (latency), not training; entry skipped",
        f"{tmp_path / 'squad.tsv'}:1: columns epoch hours f1Score: not a CIFAR-10 training entry; entry skipped"]


@pytest.mark.parametrize("hardware, gpus", [
    ("8 * V100 (Some Cloud p3.16xlarge)", 8), ("Cloud Tesla 8*V100-16GB/448 GB/96 CPU", 8),
    ("Tesla V100 * 4 GPU / 488 GB / 56 CPU", 4), ("Tesla V100 x 8 / 256 GB", 8), ("Cloud V100*1-16GB/12 CPU", 1),
    ("Box + 4 * Nvidia Tesla V100 (HAL)", 4), ("GPU Cloud - 4x GTX 1080 Ti", 4), ("1 GPU (Nvidia GeForce GTX 1080)", 1),
    ("1 K80 / 61 GB / 4 CPU", 1), ("Workstation V100", 1), ("p3.2xlarge", 1), ("g3.4xlarge", 1),
    ("60 GB / 16 CPU (n1-standard-16)", 0), ("2 * NVIDIA A100-SXM4-80GB", 2), ("a TPU pod", None)])
def test_gpu_count_from_the_hardware_text(hardware, gpus):
    assert dawn.gpu_count(hardware) == gpus


def test_no_email_address_is_ever_output(tmp_path, capsys):
    entry(tmp_path, doc={**DOC, "author": "Ann Example <ann.example@example.org>, bob@SomeLab"})
    assert main(["import", "dawnbench", str(tmp_path), "--out", str(tmp_path / "out.csv")]) == 0
    text = capsys.readouterr().out + (tmp_path / "out.csv").read_text()
    assert "example.org" not in text and "ann.example" not in text and "bob@" not in text
    assert one(tmp_path).team == "Ann Example <(e-mail left out)>, SomeLab"


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("make, says", [
    (lambda d: (entry(d), (d / "team_net9_2v100_pytorch.tsv").unlink()),
     "team_net9_2v100_pytorch.json: no team_net9_2v100_pytorch.tsv beside it"),
    (lambda d: entry(d, header=None), "team_net9_2v100_pytorch.tsv:1: expected the header "
                                      "`epoch<TAB>hours<TAB>top1Accuracy`, got a data row"),
    (lambda d: entry(d, header="epoch\thours\ttop1"), "team_net9_2v100_pytorch.tsv:1: expected the header"),
    (lambda d: entry(d, rows=[(1, 0.01, 80.5), (2, "0.02h", 94.1)]),
     "team_net9_2v100_pytorch.tsv:3: hours '0.02h' is not a number"),
    (lambda d: entry(d, rows=[(1, 0.01, 80.5), (2, 0.02, "nan")]),
     "team_net9_2v100_pytorch.tsv:3: top1Accuracy 'nan' is not a number"),
    (lambda d: entry(d, rows=[(1, 0.01), (2, 0.02, 94.1)], bom=True, crlf=True),
     "team_net9_2v100_pytorch.tsv:2: 2 cells ('1\\t0.01'), expected 3"),
    (lambda d: entry(d, rows=[]), "team_net9_2v100_pytorch.tsv: no rows under the header"),
    (lambda d: entry(d, rows=[(1, 0.01, 0.9), (2, 0.02, 0.95)]), "top1Accuracy is at most 0.95: a fraction"),
    (lambda d: entry(d, doc={**DOC, "costPerHour": "3.06 USD"}), "costPerHour '3.06 USD' is not a price"),
    (lambda d: (entry(d), (d / "team_net9_2v100_pytorch.json").write_text('{\n  "model": "x",\n  oops\n}')),
     "team_net9_2v100_pytorch.json:3: not valid JSON"),
    (lambda d: (entry(d), (d / "team_net9_2v100_pytorch.tsv").write_bytes(HEADER.encode() + b"\n1\t0.1\t9\xff")),
     "team_net9_2v100_pytorch.tsv:2: not UTF-8 text (byte 0xff)"),
], ids=["json-without-tsv", "tsv-without-header", "wrong-header", "non-number", "nan", "two-cells", "no-rows",
        "fractions", "bad-price", "bad-json", "not-utf8"])
def test_a_bad_entry_is_skipped_with_a_warning_naming_file_and_line(tmp_path, capsys, make, says):
    good, bad = tmp_path / "good", tmp_path / "bad"
    entry(good, "other_entry")
    make(bad)
    for name in ("other_entry.json", "other_entry.tsv"):
        (bad / name).write_bytes((good / name).read_bytes())
    assert main(["import", "dawnbench", str(bad)]) == 0
    out, err = capsys.readouterr()
    assert f"bench: warning: {bad}/" in err and says in err and "; entry skipped" in err, err
    assert "Traceback" not in err and "other_entry" in out and "1 skipped" in out


def test_a_folder_with_no_readable_entry_is_an_error(tmp_path, capsys):
    entry(tmp_path, header=None)
    assert main(["import", "dawnbench", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench: error: {tmp_path}: none of the 1 entries could be read:\n  - {tmp_path}/"), err


@pytest.mark.parametrize("where, says", [("missing", "no such folder"), ("empty", "no DAWNBench entries")])
def test_a_missing_or_empty_folder_is_an_error(tmp_path, capsys, where, says):
    (tmp_path / "empty").mkdir()
    assert main(["import", "dawnbench", str(tmp_path / where)]) == 2
    assert capsys.readouterr().err.startswith(f"bench: error: {tmp_path / where}: {says}")


# ------------------------------------------------------------------------------------------ the command

def test_the_command_prints_the_table_and_writes_the_csv(tmp_path, capsys):
    checkout = tmp_path / "dawn-bench-entries"
    train = checkout / "CIFAR10" / "train"
    entry(train, "b_slow", rows=[(0, 0.2, 93.0), (1, 1.0 / 3, 94.02000000000001)], bom=True, crlf=True)
    entry(train, "a_never", rows=[(1, 0.01, 93.5)], doc={k: v for k, v in DOC.items() if k != "costPerHour"})
    entry(train, "c_fast", rows=ROWS, final_newline=False)
    out_csv = tmp_path / "out" / "reported.csv"
    assert main(["import", "dawnbench", str(checkout), "--out", str(out_csv), "--source-prefix", "repo@abc:"]) == 0
    out = capsys.readouterr().out
    assert "reported by their authors, not reproduced here" in out and "3 entries, 2 reach 94%" in out
    printed = [line.split()[0] for line in out.splitlines() if line.startswith(("a_", "b_", "c_"))]
    assert printed == ["c_fast", "b_slow", "a_never"]  # by time, the one that never reaches last
    assert "not reached" in next(line for line in out.splitlines() if line.startswith("a_never"))
    with out_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
        f.seek(0)
        assert f.readline().strip() == ",".join(dawn.COLUMNS)
    assert [(r["source"], r["time_to_94_s"], r["cost_usd"], r["epochs"], r["top1_at_94"]) for r in rows] == [
        ("repo@abc:CIFAR10/train/c_fast.json", "108.00", "0.1836", "3", "94.08"),
        ("repo@abc:CIFAR10/train/b_slow.json", "1200.00", "2.0400", "2", "94.02"),
        ("repo@abc:CIFAR10/train/a_never.json", "", "", "", "")]
    assert {r["kind"] for r in rows} == {"dawnbench"} and rows[1]["note"] == "TSV numbers epochs from 0"


# ------------------------------------------------------------------------------------------ our own exports

def _summary(runs: list[dict], world: int, per_device_hour: float | None) -> dict:
    """The fields of a bundle's summary that the DAWNBench writer reads, by hand."""
    return {"kind": "classify", "target": 0.94, "precision": "bf16", "loader": "device",
            "environment": {"torch": "2.5.1", "git_commit": "abc", "git_dirty": False, "host": "h"},
            "price": {"usd_per_device_hour": per_device_hour, "source": "test"},
            "device": {"type": "cuda", "world_size": world, "name": "NVIDIA A100-SXM4-80GB"},
            "recipe": {"model": "resnet9", "name": "hand", "hash": "0" * 16},
            "dataset": {"name": "cifar10", "fingerprint": "f" * 64},
            "timing_rules": {"time_to_target": "from run_start to the first evaluation at the target"}, "runs": runs}


def _run(i: int, evals: list[tuple[float, float]]) -> dict:
    from bench.core.targets import reaches

    ttt = next((t for t, acc in evals if reaches(acc, 0.94)), None)
    return {"run_id": f"run{i}", "seed": i, "status": "reached" if ttt else "missed", "time_to_target_s": ttt,
            "best_acc": max(a for _, a in evals), "epochs": len(evals), "init_s": 1.0, "wall_s": evals[-1][0] + 1,
            "cost_usd": None, "evals": [{"epoch": n, "elapsed_s": t, "acc": a} for n, (t, a) in enumerate(evals, 1)]}


def test_round_trip_through_our_dawnbench_export(tmp_path):
    """The importer, reading what bench/report/exports.py wrote, derives the figures the export was made from:
    time to 94% (bench's own rule on the evaluations), its cost at the export's costPerHour, the epoch, the
    accuracy, the GPU count."""
    from bench.report import exports

    runs = [_run(0, [(11.37, 0.9312), (22.74, 0.94), (34.11, 0.9455)]),  # exactly at the target counts
            _run(1, [(9.13, 0.9399), (18.27, 0.9401)]),
            _run(2, [(10.0, 0.93), (20.0, 0.9399)]),  # misses
            _run(3, [(7.0 / 3, 0.57), (14.0 / 3, 0.9417), (7.0, 0.95)])]
    summary = _summary(runs, world=8, per_device_hour=2.5)
    exports.write(tmp_path, summary, {})
    entries, warnings = dawn.read_dir(tmp_path)
    assert warnings == [] and len(entries) == 4
    got = {e.source.split("/")[1]: e for e in entries}
    for run in runs:
        e, ttt = got[run["run_id"]], run["time_to_target_s"]
        if ttt is None:
            assert e.time_s is None and e.cost_usd is None
            continue
        hit = next(x for x in run["evals"] if x["elapsed_s"] == ttt)
        assert math.isclose(e.time_s, ttt, rel_tol=1e-12), (run["run_id"], e.time_s, ttt)
        assert math.isclose(e.cost_usd, ttt / 3600 * 2.5 * 8, rel_tol=1e-12)
        assert (e.epochs, e.top1, e.gpus, e.cost_per_hour) == (hit["epoch"], hit["acc"] * 100, 8, 20.0)
        assert e.best_top1 == run["best_acc"] * 100
    assert [e.source.split("/")[1] for e in entries] == ["run3", "run1", "run0", "run2"]


def test_round_trip_through_a_real_bundle(tmp_path, capsys):
    """A bundle written by the real BundleWriter (tests/bundles.py): the importer's times are the summary's, and
    the command does not label our own runs as reported by others."""
    from bundles import make_bundle

    b = make_bundle(tmp_path, [{"status": "reached", "evals": [(10.0, 0.91), (20.5, 0.9401)], "ttt": 20.5},
                               {"status": "missed", "evals": [(10.0, 0.93)]},
                               {"status": "reached", "evals": [(12.25, 0.94)], "ttt": 12.25}], target=0.94)
    summary = json.loads((b / "summary.json").read_text())
    entries, warnings = dawn.read_dir(b)
    assert warnings == []
    assert {e.source: e.time_s for e in entries} == {
        f"runs/{r['run_id']}/dawnbench.json": r["time_to_target_s"] for r in summary["runs"]}
    assert [e.gpus for e in entries] == [0, 0, 0]  # a CPU bundle
    assert main(["import", "dawnbench", str(b)]) == 0
    out = capsys.readouterr().out
    assert "(our runs' exports)" in out and "reported by their authors" not in out and "3 entries, 2 reach" in out


# ------------------------------------------------------------------------------------------ the committed table

def test_the_committed_table_of_reported_results_parses_and_names_its_sources():
    path = REPO / "results" / "reported" / "cifar10_reported.csv"
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == dawn.COLUMNS
        rows = list(reader)
    assert len(rows) >= 30
    for n, row in enumerate(rows, start=2):
        assert row["kind"] in ("dawnbench", "record") and row["source"].strip(), f"{path}:{n}: {row}"
        assert None not in row and None not in row.values(), f"{path}:{n}: wrong number of cells"
        assert "@example" not in str(row) and not any("@" in row[k] for k in ("team", "model", "hardware", "note"))
        if row["time_to_94_s"]:
            assert float(row["time_to_94_s"]) > 0
        if row["kind"] == "dawnbench":
            assert row["source"].startswith("stanford-futuredata/dawn-bench-entries@"), f"{path}:{n}: {row['source']}"
    dawnbench = [r for r in rows if r["kind"] == "dawnbench"]
    times = [float(r["time_to_94_s"]) for r in dawnbench if r["time_to_94_s"]]
    assert times == sorted(times)
    fastai = next(r for r in dawnbench if r["source"].endswith("/fastai_pytorch.json"))
    page = next(r for r in dawnbench if r["source"].endswith("/davidcpage_resnet9_1v100-ec2_pytorch.json"))
    assert (fastai["time_to_94_s"], fastai["cost_usd"][:4], page["time_to_94_s"]) == ("173.96", "1.18", "74.04")
