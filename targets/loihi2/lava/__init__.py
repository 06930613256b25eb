"""Lava deployment target: runs trained SNNs on Loihi (or its simulator) via Lava."""

from targets.loihi2.lava import compat

compat.install()
