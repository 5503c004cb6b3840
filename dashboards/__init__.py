"""Plotly figures built from a run directory (pure functions of a run)."""
