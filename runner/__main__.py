"""`python -m runner`: run the configured experiment (Hydra app; `--help` lists every config group).

Config errors, from Hydra or from our checks, end as one line on stderr and exit code 2. Ctrl-C and
SIGTERM (what cron, systemd and CI send) stop the run the same way: one line on how to finish it, and
exit code 130 or 143, whenever the signal comes (runner.stopping).
"""
from __future__ import annotations

import sys

from runner import stopping

if __name__ == "__main__":  # first of all: a signal from here on is noted, and ends the run with its exit code
    stopping.install(hold=True)

import logging  # noqa: E402
import os  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig

from runner.errors import ConfigError, one_line

log = logging.getLogger("runner")


# The runner's own modules are imported where they are needed, not above: `python -m runner` starts the
# comparison's process first thing (see the end of this file), and every import before that delays it.


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from runner.calling.job import job_folder, run_job

    try:
        run_job(cfg)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a crashed job must not stop the sweep or its comparison
        from runner.folders import JOB_ERROR_FILE
        from runner.redact import redact

        log.error("job failed: %s", exc, exc_info=True)
        folder, _, _ = job_folder()
        (folder / JOB_ERROR_FILE).write_text(redact(traceback.format_exc()), encoding="utf-8")


def entry() -> None:
    from dotenv import load_dotenv

    from runner import folders
    from runner.analysis import comparison_process

    stopping.install()  # a signal that came while Python started stops the run here, before any call
    load_dotenv(Path.cwd() / ".env", override=False)  # keys: the environment wins over .env
    from runner.redact import protect_logging

    protect_logging()  # Hydra's own lines too: its launcher logs each job's overrides (a base_url's password)
    from runner import launchers

    launchers.register()  # hydra/launcher=submitit_*: every job waited for, a dead one reported (`cluster` extra)
    # the run's folder is created when Hydra names it, never for --help, --cfg, --info...
    folders.register(create=not comparison_process.NO_RUN_OPTIONS.intersection(sys.argv[1:]))
    # Hydra would print a multi-line message and exit 1; raise instead so we can say it in one line, exit 2
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except ConfigError as exc:
        print(f"runner: config error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        stopping.interrupted(exc)
        sys.exit(130)
    except Exception as exc:
        import yaml
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        if isinstance(exc, (HydraException, OmegaConfBaseException, yaml.YAMLError)):
            print(f"runner: config error: {one_line(exc)}", file=sys.stderr)
            sys.exit(2)
        raise


def exit_now(code) -> None:
    """Exit without tearing the interpreter down: with Hydra and the SDKs loaded, freeing every module takes
    a good part of a second, for nothing. Files and logs are flushed first; the results files
    are already closed (and fsynced) by the job. A parallel launcher's worker processes (joblib) are shut
    down by the normal exit, so after one the interpreter exits the normal way."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    code = stopping.exit_code(code or 0)  # a signal's code, even when its exception was lost on the way
    if stopping.requested is not None:
        how = "stopped by SIGTERM" if code == 143 else "interrupted"
        print(f"\nrunner: {how}; run the same command again to finish: calls already answered come from "
              "the cache, free", file=sys.stderr)
    if "joblib" in sys.modules:
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    try:
        from runner.analysis import comparison_process

        comparison_process.start_for(sys.argv[1:])  # first: its imports overlap everything that follows
        entry()
    except SystemExit as exc:
        exit_now(exc.code)
    except KeyboardInterrupt as exc:  # a signal before entry() could catch it
        stopping.interrupted(exc)
        exit_now(130)
    exit_now(0)
