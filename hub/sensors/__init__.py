"""Sensors: the sensor node (soil moisture, cabinet door, irrigation valve) and the air-quality sensor."""
