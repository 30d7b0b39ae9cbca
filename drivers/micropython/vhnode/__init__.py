"""Village Hub sensor node: the firmware package copied to the microcontroller's filesystem as /vhnode.

Everything in this package except `hw` imports no hardware module and runs under CPython too: the hub's
driver speaks the link with `protocol`, and its simulator runs `node` with simulated pins.
"""

FIRMWARE_VERSION = "1.0.0"
