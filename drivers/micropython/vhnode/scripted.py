"""A board whose pins are plain attributes, for boards that stand in for the hardware: the hub's simulator,
the self-test and the hub's tests. Not imported by main.py: on the node it only serves selftest.py.

Subclasses add the UARTs (read_hub, write_hub, read_air) and may extend set_valve to record its writes.
"""

from .node import Board


class ScriptedPins(Board):
    """The soil probes' raw readings (`soil`), the door switch (`door`, True = open) and the valve output
    (`valve`, True = open), as attributes that a script sets and reads."""

    def __init__(self, soil: list[int]) -> None:
        self.soil = soil
        self.door = False
        self.valve = False

    def soil_probes(self) -> int:
        return len(self.soil)

    def read_soil(self, index: int) -> int:
        return self.soil[index]

    def read_door(self) -> bool:
        return self.door

    def set_valve(self, open: bool) -> None:
        self.valve = open
