"""Widgets of bert2-tui: charts, probability bars, attention heat maps."""
