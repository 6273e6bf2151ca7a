"""Benchmarks for Sealbox (see bench/README.md)."""
