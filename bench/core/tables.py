"""The one table printer: a rich table on a terminal, aligned plain text in logs and pipes (so CI logs and
saved outputs read the same as a screen). Columns before `left` are text and align left; the rest right."""
from __future__ import annotations

import sys
from typing import Callable


def plain_table(header: list[str], cells: list[list[str]], left: int = 1) -> str:
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                     .rstrip() for row in [header, *cells])


def print_table(title: str, header: list[str], cells: list[list[str]], note: str = "", left: int = 1,
                say: Callable[[str], None] = print) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, caption=note or None)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i < left else "right", overflow="fold")
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    say(title)
    say(plain_table(header, cells, left))
    if note:
        say(note)
