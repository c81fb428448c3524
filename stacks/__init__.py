"""Composition of the estate: environment configs, stacks and stages."""
