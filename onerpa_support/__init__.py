"""The ``onerpa-support`` command line: the one package that joins every other.

The core (``onerpa``), the call flow (``ivr``) and the dashboard (``dashboard``) each offer
their commands; only this package imports all three, and nothing imports it back.
"""
