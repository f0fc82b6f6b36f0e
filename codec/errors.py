"""The one base class of errors caused by what a user gave (a file, a field, a value).

Every layer's "bad input" error derives from `InputError` (bitstreams, codec directories, caches,
checkpoints, datasets, heads, neck directories, results files), so the CLI root maps them all to exit
code 3 with the message, which names the file or field, and lets anything else surface as an internal
error (exit code 4). It lives here, in the lowest layer that raises such errors.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 3
EXIT_INTERNAL = 4


class InputError(ValueError):
    """Bad user input; the message names the file or field. The CLI exits with code 3."""

    exit_code = EXIT_BAD_INPUT
