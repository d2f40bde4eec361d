"""Output shared by the benchmarks: the printed table may also be written to a file."""

from __future__ import annotations

__all__ = ["save_table", "finish"]


def save_table(text: str, output: str | None) -> None:
    """Write the markdown ``text`` to ``output`` (with a final newline) when a path is given."""
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n")


def finish(table: str, output: str | None) -> int:
    """Print the full markdown ``table`` after the per-row lines, write it to ``output``; exit code 0."""
    print()
    print(table)
    save_table(table, output)
    return 0
