"""Run a sweep: `python experiments/launch.py sweep=table1 [preset=tiny|paper] [cluster=local|slurm]
[seeds=3] [profile=default] [max_parallel=1] [slurm.KEY=VALUE ...] [key=value ...] [--dry-run]`.

Sweeps are `experiments/sweeps/*.yaml`; Slurm profiles are `slurm/*.yaml`. Complete runs are
skipped, unfinished ones resume from their last checkpoint. See vineppo.launch for the details.
"""

import sys
from pathlib import Path

try:
    from vineppo.launch import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from vineppo.launch import main

if __name__ == "__main__":
    sys.exit(main())
