"""Advantage rules and losses (SPEC.md), then one small file per method."""
