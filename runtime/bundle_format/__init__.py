"""The bundle format, in one place: what the exporter writes and the runtime reads.

- ``manifest``: the manifest's frozen types, their vocabularies (``Kind``,
  ``Feedback``, ``Start``, ``Init``, ``Padding``) and the one schema a
  manifest is validated against when it is read;
- ``writer``: writing a whole bundle folder atomically, with every file's hash;
- ``golden``: the golden-data key scheme and reading golden data back.

It needs numpy alone: the exporter, the runtime and verification all use it.
"""
