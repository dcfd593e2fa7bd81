"""`python -m runner.view`: the runs in the history and outputs/, in the browser (runner.analysis.view).

    python -m runner.view                     http://127.0.0.1:8765/ over outputs/history.sqlite and outputs/
    python -m runner.view --port 0 --open     any free port, opened in the default browser
"""
from __future__ import annotations

import sys

from runner.analysis.view import main

if __name__ == "__main__":
    sys.exit(main())
