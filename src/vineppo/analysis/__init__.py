"""Analyses of runs: value-estimate quality."""
