"""Lava deployment target: runs trained SNNs on Loihi (or its simulator) via Lava."""

from targets.loihi2.lava import compat
from toolchain.lifetime import name_segments

compat.install()
name_segments()  # Lava's channels: a killed run's segments are found by the next run
