"""Core stages: plain functions over pandas/pyarrow that know tables, keys and columns, but neither
Dagster nor any model backend."""
