"""Power: the UPS (mains, battery) and the real-time clock, and the clean power-off on a flat battery."""
