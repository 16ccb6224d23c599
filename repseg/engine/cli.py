"""Command-line error handling shared by the tools: user mistakes end in one line, not a traceback."""
import os
import sys
from typing import Callable

#: Errors that come from bad input (a path, a config key, a value); anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               PermissionError)


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; print a user error as ``error: ...`` on one line and exit 2. REPSEG_DEBUG=1 shows tracebacks."""
    try:
        main()
    except USER_ERRORS as err:
        if os.environ.get('REPSEG_DEBUG'):
            raise
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f'error: {" ".join(message.split())}', file=sys.stderr)
        sys.exit(2)
