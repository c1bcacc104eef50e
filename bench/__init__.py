"""Benchmarks of runtools-tail against baselines measured in the same run.

Run `python -m bench` from the repository root (or `make bench`), and
`python -m bench --quick` for a smoke run of a couple of minutes. Every
figure is a median or a percentile of this run, compared as a ratio to a
baseline of this run, so the results do not depend on numbers measured on
another machine. See bench/README.md for the method of each scenario.
"""
