"""HTML out of plain values: the Jinja2 environment, the number formats the pages share, and Markdown.

Templates live in bench/site/templates; autoescaping is on, so every value from a table or a bundle is text,
never markup. Markdown (report.md, a study's text) goes through markdown-it-py with raw HTML disabled, for the
same reason.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
DASH = "–"


# ------------------------------------------------------------------------------------------ numbers

def _ok(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def seconds(v) -> str:
    """Time in seconds with precision that fits its size: 2.015 s, 40.58 s, 218.1 s, 1234 s."""
    if not _ok(v):
        return DASH
    digits = 3 if abs(v) < 10 else 2 if abs(v) < 100 else 1 if abs(v) < 1000 else 0
    return f"{v:.{digits}f} s"


def ci(low, high) -> str:
    if not (_ok(low) and _ok(high)):
        return "no CI (n < 2)"
    return f"[{seconds(low)[:-2]}, {seconds(high)}]"


def percent(v, digits: int = 1) -> str:
    return DASH if not _ok(v) else f"{v:.{digits}%}"


def dollars(v) -> str:
    return DASH if not _ok(v) else f"${v:.2f}" if abs(v) >= 1 else f"${v:.4f}"


def hours(v) -> str:
    return DASH if not _ok(v) else f"{v:.4f}"


def energy(joules) -> str:
    """Joules as kJ (or MJ past 10,000 kJ): a CPU run is tens of kJ, an 8-GPU run a few MJ."""
    if not _ok(joules):
        return DASH
    return f"{joules / 1e6:.2f} MJ" if joules >= 1e7 else f"{joules / 1e3:.1f} kJ"


def score(v) -> str:
    """A sample-quality score (fd_judge 247.1, is_judge 1.228): four significant digits."""
    return DASH if not _ok(v) else f"{v:.4g}"


def sort_value(v) -> str:
    """What a cell sorts by (the site's JavaScript reads data-sort): the raw number, or '' to sort last."""
    return "" if not _ok(v) else repr(float(v)) if isinstance(v, (int, float)) else str(v)


def pretty_json(v) -> str:
    return json.dumps(v, indent=2, sort_keys=True)


def flatten(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as (dotted key, text) pairs; lists and scalars as compact JSON (strings as themselves)."""
    out = []
    for k in sorted(data):
        v, key = data[k], f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += flatten(v, key + ".")
        else:
            out.append((key, v if isinstance(v, str) else json.dumps(v)))
    return out


# ------------------------------------------------------------------------------------------ markdown

@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown(text: str) -> str:
    """Markdown to HTML; tables wrapped so that a wide one scrolls inside the page instead of widening it."""
    html = _markdown().render(text)
    return html.replace("<table>", '<div class="table-wrap"><table>').replace("</table>", "</table></div>")


# ------------------------------------------------------------------------------------------ templates

@lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(seconds=seconds, percent=percent, dollars=dollars, hours=hours, energy=energy,
                       sort_value=sort_value, pretty_json=pretty_json, score=score)
    env.globals.update(ci=ci, DASH=DASH)
    return env


def page(template: str, path: Path, **context) -> None:
    """Render `template` into `path`. The context names `root`, the relative way back to the site's top
    ('', '../', '../../'), so that every link stays relative and the site works from file://."""
    from markupsafe import Markup

    for k in ("body_html", "summary_html"):
        if k in context and context[k] is not None:
            context[k] = Markup(context[k])  # our own Markdown rendering, raw HTML already disabled
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(environment().get_template(template).render(**context), encoding="utf-8")
