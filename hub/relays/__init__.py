"""The relays as a hub service: states declared by the other services, reconciled by drivers.relays."""
