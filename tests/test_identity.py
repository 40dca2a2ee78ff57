"""Identity, guarded as carefully as timing: each input a result's identity depends on is changed alone, and the
identity must change with it. The recipe hash (every resolved field but `runs`), the data fingerprint (every
pixel, label and the split between train and test) and the bundle's MANIFEST (every file's every byte)."""
import copy
import shutil

import numpy as np
import pytest
import yaml

from bench import recipe as recipes
from bench.data.identity import fingerprint
from bench.data.types import Split
from bench.recipe.schema import ADDED_FIELDS, resolved_hash
from bench.report import manifest


# ---------------------------------------------------------------- the recipe hash

def leaves(value, path=()):
    """(path, value) for every leaf of a resolved recipe; a list is a leaf and so is each of its items."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    else:
        yield path, value
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from leaves(item, path + (i,))


def changed(value):
    """A different value of a similar kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + [1]
    if value is None:
        return 1
    raise AssertionError(f"no change written for {value!r}")


def set_at(d, path, value):
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value


# Recipes between them set every section away from its default: groups and lookahead (record), a GAN
# section, augmentation, the DDP hardware block.
HASHED = ["record/lookahead", "wgan_gp_cpu", "wrn22_8gpu", "cpu_quick"]


@pytest.mark.parametrize("name", HASHED)
def test_every_resolved_field_but_runs_changes_the_hash(name):
    resolved = recipes.load(name).to_dict()
    base = resolved_hash(resolved)
    checked = 0
    for path, value in leaves(resolved):
        if path == ("runs",):
            continue
        edited = copy.deepcopy(resolved)
        set_at(edited, path, changed(value))
        assert resolved_hash(edited) != base, f"{name}: changing {'.'.join(map(str, path))} alone left the hash"
        checked += 1
    assert checked > 60  # the walk reached the nested sections, not just the top level
    edited = copy.deepcopy(resolved)
    edited["runs"] = resolved["runs"] + 4
    assert resolved_hash(edited) == base  # how many runs does not change what one run measures


@pytest.mark.parametrize("path", sorted(ADDED_FIELDS))
def test_a_later_field_counts_once_it_leaves_its_as_before_value(path):
    before = ADDED_FIELDS[path]
    at_before = recipes.load("cpu_quick").to_dict()
    set_at(at_before, path, copy.deepcopy(before))
    base = resolved_hash(at_before)
    absent = copy.deepcopy(at_before)
    holder = absent
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    assert resolved_hash(absent) == base  # a bundle written before the field existed hashes as it did
    inner, value = next(leaves(before))  # a dict's first leaf, or the value itself
    moved = copy.deepcopy(at_before)
    set_at(moved, path + inner, changed(value))
    assert resolved_hash(moved) != base


def test_the_bundles_recipe_yaml_hashes_to_the_recipe(tmp_path):
    """What a bundle stores (the resolved recipe as YAML) must read back to the same hash."""
    r = recipes.load("record/lookahead")
    text = yaml.safe_dump(r.to_dict(), sort_keys=False)
    assert resolved_hash(yaml.safe_load(text)) == r.hash


# ---------------------------------------------------------------- the data fingerprint

def tiny_splits():
    rng = np.random.default_rng(0)
    train = Split(rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8), np.array([0, 1, 2, 0, 1, 2]))
    test = Split(rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8), np.array([2, 1, 0]))
    return train, test


def edits():
    """Each a function (train, test) -> (train, test) changing one thing."""
    def pixel(split_index, index):
        def edit(train, test):
            splits = [Split(train.images.copy(), train.labels), Split(test.images.copy(), test.labels)]
            splits[split_index].images[index] ^= 1
            return tuple(splits)
        return edit

    def label(split_index, i):
        def edit(train, test):
            splits = [Split(train.images, train.labels.copy()), Split(test.images, test.labels.copy())]
            splits[split_index].labels[i] = (splits[split_index].labels[i] + 1) % 3
            return tuple(splits)
        return edit

    def move_one_to_test(train, test):
        return (Split(train.images[:-1], train.labels[:-1]),
                Split(np.concatenate([train.images[-1:], test.images]), np.concatenate([train.labels[-1:], test.labels])))

    def reorder(train, test):
        order = [1, 0, 2, 3, 4, 5]
        return Split(train.images[order], train.labels[order]), test

    def reshape(train, test):  # the same bytes cut into other image sizes
        return Split(train.images.reshape(6, 2, 8, 3), train.labels), test

    return {"first train pixel": pixel(0, (0, 0, 0, 0)), "last train pixel": pixel(0, (5, 3, 3, 2)),
            "a test pixel": pixel(1, (2, 1, 2, 1)), "a train label": label(0, 4), "a test label": label(1, 0),
            "an image moved from train to test": move_one_to_test, "two train images swapped": reorder,
            "the image size": reshape}


@pytest.mark.parametrize("what", sorted(edits()))
def test_changing_one_thing_in_the_data_changes_the_fingerprint(what):
    train, test = tiny_splits()
    base = fingerprint(train, test)
    assert fingerprint(*tiny_splits()) == base  # the same content, the same fingerprint
    assert fingerprint(*edits()[what](train, test)) != base, what


def test_the_fingerprint_hashes_labels_by_value_not_by_dtype():
    train, test = tiny_splits()
    narrow = Split(train.images, train.labels.astype(np.int32))
    assert fingerprint(narrow, test) == fingerprint(train, test)


# ---------------------------------------------------------------- the bundle's MANIFEST

def test_one_changed_byte_in_any_file_is_named_and_nothing_else(hand_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(hand_bundle, bundle)
    files = manifest.bundle_files(bundle)
    assert len(files) >= 8 and manifest.check(bundle) == []
    for rel in files:
        path = bundle / rel
        original = path.read_bytes()
        for at in sorted({0, len(original) // 2, len(original) - 1}):
            data = bytearray(original)
            data[at] ^= 0x01
            path.write_bytes(bytes(data))
            assert manifest.check(bundle) == [f"{rel}: changed (its sha256 differs from the one in MANIFEST)"], (rel, at)
        path.write_bytes(original)
    assert manifest.check(bundle) == []


def test_a_renamed_file_is_missing_under_its_old_name_and_extra_under_the_new(hand_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(hand_bundle, bundle)
    (bundle / "env.json").rename(bundle / "env2.json")
    assert manifest.check(bundle) == ["env.json: missing (listed in MANIFEST, not in the bundle)",
                                      "env2.json: extra file (not listed in MANIFEST)"]
