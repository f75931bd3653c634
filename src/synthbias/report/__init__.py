"""Plots and reports built from stored results."""
