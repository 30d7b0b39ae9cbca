"""Lighting: circuits of relays switched by dusk-to-dawn, fixed, weekday and half-night rules, and by overrides."""
