"""What every stage shares: logging, params, and a clean exit on user errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ser.errors import SerError

log = logging.getLogger("ser")


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a SerError prints its message (no traceback) and exits with 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        main()
    except SerError as err:
        log.error("%s", err)
        sys.exit(2)
