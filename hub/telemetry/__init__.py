"""Periodic reports on the box itself (vitals) for the commune cloud."""
