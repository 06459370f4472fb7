"""Loading a ``.keras`` file that the user may not have made: safely, with
errors that say what is wrong with the file."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from parity.runtime.errors import ParityError


def load_keras(path: Path, *, unsafe: bool = False) -> Any:
    """Load a Keras 3 model with ``safe_mode`` on unless ``unsafe``: a model
    that needs unsafe deserialization (a ``Lambda`` layer runs arbitrary code)
    is refused with a message naming ``--unsafe``."""
    path = Path(path)
    if not path.exists():
        raise ParityError(f"{path}: no such file")
    if path.is_dir():
        raise ParityError(f"{path}: is a folder, expected a .keras file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ParityError(f"{path}: unreadable ({exc.strerror})") from None
    if not zipfile.is_zipfile(path):
        raise ParityError(f"{path}: not a Keras 3 model file (.keras is a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ParityError(f"{path}: not a Keras 3 model file (no config.json inside)")
            bad = archive.testzip()
            if bad is not None:
                raise ParityError(f"{path}: corrupt archive (member {bad!r} is damaged)")
    except zipfile.BadZipFile as exc:
        raise ParityError(f"{path}: corrupt archive ({exc})") from None
    import keras

    from parity import models  # noqa: F401  (the zoo's layers, should it register any)

    try:
        return keras.saving.load_model(path, safe_mode=not unsafe, compile=False)
    except Exception as exc:
        message = " ".join(str(exc).split())
        if "safe_mode" in message or "unsafe" in message.lower() or "lambda" in message.lower():
            raise ParityError(
                f"{path}: the model needs unsafe deserialization (a Lambda layer runs Python "
                "code when loaded); pass --unsafe only if you trust this file"
            ) from None
        raise ParityError(f"{path}: cannot load Keras model: {message[:300]}") from None


def source_info(path: Path, model: Any) -> dict[str, str]:
    """What the manifest records about the model a bundle came from."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"name": model.name, "file": Path(path).name, "sha256": digest}
