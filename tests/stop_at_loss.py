"""`vineppo rl` stopped at a given loss computation, in every process at once: a job killed in the
middle of an iteration, for the resume tests that run several processes (tests/test_distributed.py).

    python -m torch.distributed.run ... tests/stop_at_loss.py N key=value ...
"""

import sys

from vineppo import cli, loop

STOPPED = 75
"""The exit status of a stopped run."""


def main() -> int:
    stop_at, calls, real = int(sys.argv[1]), [0], loop.minibatch_loss

    def stopping(*args, **kwargs):
        calls[0] += 1
        if calls[0] == stop_at:
            raise SystemExit(STOPPED)
        return real(*args, **kwargs)

    loop.minibatch_loss = stopping
    return cli.main(["rl", *sys.argv[2:]])


if __name__ == "__main__":
    sys.exit(main())
