"""Flashing: one board's flash from DETACH to the manifest, its failures in words, many boards
at once on jobs of their own, a station for a production line, and how a stopped run ends."""
