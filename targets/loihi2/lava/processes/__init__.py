"""Project-owned Lava processes and their models (Lava scans this folder for models)."""
