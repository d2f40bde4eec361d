"""Copy posteriordb posteriors into ``benchmarks/posteriordb/data`` (run by hand, not at run time).

``python -m sciml_benchmarks.posteriordb.import_posteriordb PATH`` reads each posterior folder of a
posteriordb subset at ``PATH`` (``data.json.zip``, ``reference_draws.json.zip``,
``reference_info.json``) and writes, per posterior, the data zip unchanged and ``reference.npz``:
the reference draws' per-parameter mean and standard deviation over all 10 x 1000 draws, the
parameter names in posteriordb's order, and 1000 of the draws (every 10th, chains interleaved) for
distances between draw sets. The licence file is copied beside them.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data")


def _read_zip_json(path: Path) -> object:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(z.namelist()[0]))


def import_one(folder: Path) -> None:
    chains = _read_zip_json(folder / "reference_draws.json.zip")
    assert isinstance(chains, list)
    names = list(chains[0].keys())
    draws = np.stack([np.array([c[k] for k in names], dtype=np.float64).T for c in chains])  # (chains, n, p)
    flat = draws.reshape(-1, len(names))
    thinned = draws.transpose(1, 0, 2).reshape(-1, len(names))[::10]  # interleave the chains, then thin
    out = DATA / folder.name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "data.json.zip", out / "data.json.zip")
    np.savez_compressed(out / "reference.npz", names=np.array(names), mean=flat.mean(0), sd=flat.std(0, ddof=1),
                        draws=thinned, n_draws=np.array(flat.shape[0]))


def main(argv: list[str]) -> int:
    root = Path(argv[0])
    for folder in sorted(p for p in root.iterdir() if (p / "reference_draws.json.zip").exists()):
        import_one(folder)
        print(folder.name)
    shutil.copyfile(root / "LICENCE.md", DATA / "LICENCE.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
