"""Lava deployment target: runs trained SNNs on Loihi (or its simulator) via Lava."""

from targets.lava import compat

compat.install()
