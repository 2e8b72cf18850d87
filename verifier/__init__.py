"""Masker's offline verifier: checks compliance reports, audit-log exports, proofs and receipts without trusting
the server.

A package of its own that imports only the Python standard library (3.11 or newer): auditors run it as one file,
``masker-verify.pyz`` (served at ``GET /api/v1/verifier/masker-verify.pyz``), and the server imports its Merkle
primitives from ``verifier.merkle``. It never imports the server. Entry point: ``verifier.cli.main``.
"""

PROG = "python3 masker-verify.pyz"
"""How the verifier is run, as every help text and message names it."""
