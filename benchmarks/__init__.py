"""Benchmarks behind every number shoulders publishes: ``python -m benchmarks --profile quick|full [names...]``.

Each benchmark is a module with ``run(profile) -> dict`` (its JSON payload, including ``rows`` and a ``table``
string) and lives in :data:`benchmarks.__main__.BENCHMARKS`. They are not part of ``make test``; see
``benchmarks/README.md`` for the commands, the machine and the expected durations.

This package must stay importable without shoulders' heavy dependencies (``benchmarks.peers`` runs a worker in
fastai's own virtual environment), so nothing is imported here.
"""
