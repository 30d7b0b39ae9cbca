"""Sensor node entry point: MicroPython runs /main.py after boot. Copy it with the vhnode/ package (README.md).

The loop never sleeps long: the hub link is polled every few milliseconds. A hardware watchdog resets the node
if the loop stops (a hang or an uncaught exception); the reset brings the valve pin low, so a dead loop cannot
leave the valve open.
"""

import sys
import time

import machine
from vhnode import hw
from vhnode.node import Node

WATCHDOG_MS = 8000
LOOP_SLEEP_MS = 2


def main() -> None:
    board = hw.MachineBoard(hw.default_pins())
    clock = hw.Clock()
    node = Node(board, hw.node_config(), clock.now())
    watchdog = machine.WDT(timeout=WATCHDOG_MS)
    while True:
        node.step(clock.now())
        watchdog.feed()
        time.sleep_ms(LOOP_SLEEP_MS)


try:
    main()
except Exception as exc:  # the last resort: report, then reset into a closed valve
    sys.print_exception(exc)
    time.sleep_ms(1000)
    machine.reset()
