"""bench.core.paths.check_output / check_input: the one check every command makes of the paths it is given,
before any work. Each refusal is a BenchError naming the option, the path, what is wrong and the fix.

"Not writable" and "not readable" are decided by os.access, which says yes to root whatever the mode bits: the
tests of those branches replace os.access (as the check sees it) instead of chmod-ing, so they take the same
branch as root and as a normal user; the branch where os.access says yes is tested on real tmp folders."""
import os
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.core.paths import check_input, check_output


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file where a folder would have to be."""
    f = tmp_path / "file"
    f.write_text("x")
    return f


def deny(monkeypatch, denied: Path, mode: int):
    """os.access says no to `mode` on `denied` (as it would to a normal user without that permission)."""
    real = os.access

    def access(path, want, *a, **kw):
        if Path(path) == denied and want & mode:
            return False
        return real(path, want, *a, **kw)

    monkeypatch.setattr(os, "access", access)


# ------------------------------------------------------------------------------------------ outputs: a file

def test_a_file_that_can_be_created_passes_and_nothing_is_created(tmp_path):
    assert check_output("--json", tmp_path / "a" / "b" / "x.json") == tmp_path / "a" / "b" / "x.json"
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    check_output("--json", existing)  # an existing file is replaced
    check_output("--json", "relative.json")  # in the working directory


def test_a_file_that_names_a_folder(tmp_path):
    with pytest.raises(BenchError, match=r"^--results .*: is a directory; name a CSV file in it, "
                                         r"e\.g\. --results .*results\.csv$"):
        check_output("--results", tmp_path, what="CSV file", example="results.csv")


@pytest.mark.parametrize("under", ["x.json", "sub/deeper/x.json"])
def test_a_file_under_a_file(blocker, under):
    with pytest.raises(BenchError) as e:
        check_output("--json", blocker / under, what="JSON file")
    msg = str(e.value)
    assert msg.startswith(f"--json {blocker / under}: lies under a file")
    assert f"cannot create or write it in {blocker} (not a folder)" in msg
    assert "name a JSON file in a folder you can write" in msg


def test_a_file_in_a_folder_without_write_permission(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    check_output("--json", folder / "new" / "x.json")  # os.access as it is: writable
    deny(monkeypatch, folder, os.W_OK)
    with pytest.raises(BenchError, match=r"^--json .*x\.json: not writable: cannot create or write it in .*ro "
                                         r"\(no write permission\); fix the folder's permissions"):
        check_output("--json", folder / "new" / "x.json")  # the nearest existing folder is the one asked


def test_an_existing_file_without_write_permission(tmp_path, monkeypatch):
    f = tmp_path / "x.json"
    f.write_text("{}")
    deny(monkeypatch, f, os.W_OK)
    with pytest.raises(BenchError, match=r"x\.json: not writable \(no write permission on the file\)"):
        check_output("--json", f)


# ------------------------------------------------------------------------------------------ outputs: a folder

def test_a_folder_that_can_be_created_or_exists_passes(tmp_path):
    check_output("--reports", tmp_path / "new" / "reports", folder=True)
    check_output("--reports", tmp_path, folder=True)
    assert not (tmp_path / "new").exists()


def test_a_folder_that_is_a_file(blocker):
    with pytest.raises(BenchError, match=r"^--reports .*file: is a file, not a folder; name a folder"):
        check_output("--reports", blocker, folder=True)


def test_a_folder_under_a_file(blocker):
    with pytest.raises(BenchError, match=r"^--reports .*reports: lies under a file: cannot create or write it in "
                                         r".*file \(not a folder\)"):
        check_output("--reports", blocker / "reports", folder=True)


def test_an_existing_folder_without_write_permission(tmp_path, monkeypatch):
    deny(monkeypatch, tmp_path, os.W_OK)
    with pytest.raises(BenchError, match=r"not writable: .*\(no write permission\)"):
        check_output("--reports", tmp_path, folder=True)


def test_a_replaced_folder_needs_a_writable_parent_not_a_writable_self(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    deny(monkeypatch, site, os.W_OK)
    check_output("--out", site, folder=True, replaced=True)  # built beside it, renamed into place
    deny(monkeypatch, tmp_path, os.W_OK)
    with pytest.raises(BenchError, match=r"--out .*site: not writable"):
        check_output("--out", site, folder=True, replaced=True)


# ------------------------------------------------------------------------------------------ inputs

def test_inputs_that_are_there_pass(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("a\n")
    assert check_input("--results", f) == f
    assert check_input("--reports", tmp_path, folder=True) == tmp_path


def test_an_input_that_does_not_exist(tmp_path):
    with pytest.raises(BenchError, match=r"^--results .*t\.csv: does not exist; name an existing results table$"):
        check_input("--results", tmp_path / "t.csv", what="results table")
    with pytest.raises(BenchError, match=r"does not exist; run `bench run` first$"):
        check_input("--results", tmp_path / "t.csv", fix="run `bench run` first")
    with pytest.raises(BenchError, match=r"does not exist"):
        check_input("--results", tmp_path / "file" / "t.csv")  # under a file: no such path either


def test_an_input_of_the_wrong_kind(tmp_path, blocker):
    with pytest.raises(BenchError, match=r"^--results .*: is a folder, not a file; name a results table$"):
        check_input("--results", tmp_path, what="results table")
    with pytest.raises(BenchError, match=r"^--reports .*file: is a file, not a folder; name a folder$"):
        check_input("--reports", blocker, folder=True)


def test_an_input_without_read_permission(tmp_path, blocker, monkeypatch):
    deny(monkeypatch, blocker, os.R_OK)
    with pytest.raises(BenchError, match=r"file: not readable \(no read permission\); fix its permissions"):
        check_input("--results", blocker)
    deny(monkeypatch, tmp_path, os.X_OK)  # a folder must also be searchable
    with pytest.raises(BenchError, match=r"not readable"):
        check_input("--reports", tmp_path, folder=True)


def test_mode_bits_where_os_access_honours_them(tmp_path):
    """The same refusals from real permissions, where os.access honours mode bits (a normal user; not root,
    whose os.access says yes to everything: there the tests above, which replace os.access, stand in)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "t.csv").write_text("a\n")
    folder.chmod(0o500)
    (folder / "t.csv").chmod(0o000)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("os.access ignores mode bits here (root)")
        with pytest.raises(BenchError, match=r"not writable: .*\(no write permission\)"):
            check_output("--json", folder / "x.json")
        with pytest.raises(BenchError, match=r"not readable \(no read permission\)"):
            check_input("--results", folder / "t.csv")
    finally:
        (folder / "t.csv").chmod(0o600)
        folder.chmod(0o700)
