"""Audio out: the loudspeaker amplifier's sound source, owned here and used by the broadcast service."""
