"""Seeing inside every group: collecting stats from the scoreboard, and serving them (master)."""
