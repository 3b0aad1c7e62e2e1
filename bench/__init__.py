"""Benchmarks: run each as ``python -m bench.<name>``; figures go to docs/benchmarks.md.

They build their own data in temporary places (a SQLite file in a temporary directory, a
throwaway schema on PostgreSQL) and never touch the service's database.
"""
