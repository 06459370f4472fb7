"""Shared fixtures. Training the tiny zoo once per session keeps the suite fast."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
