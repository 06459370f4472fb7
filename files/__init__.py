"""Writing a user's files: reports, plots, arrays, the support matrix.

Every file parity writes for a user goes through :func:`replacing`, so that
one rule holds for all of them:

- a regular file (or a missing one) is written beside its target and renamed
  over it once complete: an interrupted write leaves the old file whole, and
  the new one gets the user's umask (not ``mkstemp``'s 0600);
- a symbolic link is written through: the file it points to is replaced, the
  link stays;
- a character device (``/dev/null``, a terminal) or a stream of this process
  (``/dev/stdout``, ``/dev/fd/N``) is written to as a stream, never replaced;
  a FIFO only while a process reads it (else refused: the write would hang);
- anything else (a folder, a block device, a socket) is refused, and so is a
  file inside a bundle folder: only ``parity export`` writes bundles.

Keras models (``parity train``) are saved by :func:`save_model`, by the same
rule. Bundles themselves are written by :mod:`parity.exporter.bundle_writer`.
"""

from parity.files.model_file import check_model_path, save_model
from parity.files.replace import check_target, replacing, save_array

__all__ = ["check_model_path", "check_target", "replacing", "save_array", "save_model"]
