"""The ``parity`` command line: one thin click command per module in
:mod:`parity.cli.commands`, the options they share (:mod:`parity.cli.options`),
and the orchestration behind ``demo`` and ``coverage``, which drive the
exporter and verification on the zoo and on the support matrix."""
