"""Output shared by the benchmarks: the printed table may also be written to a file."""

from __future__ import annotations

__all__ = ["save_table"]


def save_table(text: str, output: str | None) -> None:
    """Write the markdown ``text`` to ``output`` (with a final newline) when a path is given."""
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n")
