"""Compression: each method takes a Policy and returns a smaller Policy, recording itself
in the provenance's ``transforms``."""
