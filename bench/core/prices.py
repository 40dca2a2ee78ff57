"""Prices for the cost column: bench/core/prices.yaml, or a price the recipe names itself."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.core.errors import BenchError

PRICES_FILE = Path(__file__).with_name("prices.yaml")
# A CPU run has no accelerator price: its cost is unknown (empty), its device-hours are recorded. Rows written
# before 2026-11-28 said LEGACY_CPU_SOURCE and recorded such runs as costing $0; summaries keep reading them so.
CPU_SOURCE = "none for a CPU run: cost unknown (give the recipe a price to price it)"
LEGACY_CPU_SOURCE = "n/a (CPU)"
CPU_SOURCES = (CPU_SOURCE, LEGACY_CPU_SOURCE)


@dataclass(frozen=True)
class Price:
    usd_per_hour: float | None  # per device; None when unknown
    source: str


@dataclass(frozen=True)
class _Entry:
    match: str
    usd_per_gpu_hour: float
    source: str
    date: str


@functools.lru_cache(maxsize=None)
def load_table(path: Path = PRICES_FILE) -> tuple[_Entry, ...]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise BenchError(f"cannot read price table {path}: {e}") from None
    entries = []
    for i, item in enumerate(doc.get("gpus") or []):
        where = f"{path}: gpus[{i}]"
        if not isinstance(item, dict) or not all(k in item for k in ("match", "usd_per_gpu_hour", "source", "date")):
            raise BenchError(f"{where} needs match, usd_per_gpu_hour, source and date; got {item!r}")
        usd = item["usd_per_gpu_hour"]
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or usd < 0:
            raise BenchError(f"{where}: usd_per_gpu_hour must be a number >= 0, got {usd!r}")
        entries.append(_Entry(str(item["match"]), float(usd), str(item["source"]).strip(), str(item["date"])))
    return tuple(entries)


def lookup(device_name: str | None, device_type: str, path: Path = PRICES_FILE) -> Price:
    """Price per device-hour for a device named as torch/NVML report it, e.g. "NVIDIA H100 80GB HBM3"."""
    if device_type == "cpu":
        return Price(None, CPU_SOURCE)
    name = (device_name or "").lower()
    for entry in load_table(Path(path)):
        if name and entry.match.lower() in name:
            return Price(entry.usd_per_gpu_hour, f"{entry.source} ({entry.date})")
    return Price(None, f"no price for {device_name or 'unnamed device'} in bench/core/prices.yaml; add one")


def resolve_price(device_name: str | None, device_type: str, recipe_price: float | None,
                  recipe_price_source: str | None) -> Price:
    """A recipe's own price wins over the table (e.g. a spot, reserved or in-house rate)."""
    if recipe_price is None:
        return lookup(device_name, device_type)
    if isinstance(recipe_price, bool) or not isinstance(recipe_price, (int, float)) or recipe_price < 0:
        raise BenchError(f"recipe price_usd_per_hour must be a number >= 0, got {recipe_price!r}")
    return Price(float(recipe_price), recipe_price_source or "recipe (no source given)")
