"""Run a sweep: `python experiments/launch.py sweep=table1 [preset=tiny|paper] [cluster=local|slurm]
[seeds=3] [profile=default] [max_parallel=1] [slurm.KEY=VALUE ...] [key=value ...] [--dry-run]`.

Sweeps are `experiments/sweeps/*.yaml`; Slurm profiles are `slurm/*.yaml`. Complete runs are
skipped, unfinished ones resume from their last checkpoint. See vineppo.launch for the details.

The launcher and every job it starts run this checkout's package (its `src/` first on the path and
on PYTHONPATH, which local and Slurm jobs inherit), even where the environment's `vineppo` is an
editable install of another checkout: a sweep runs the code beside its sweep files, and each run's
summary.json records that code's commit.
"""

import os
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])

from vineppo.launch import main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    sys.exit(main())
