"""Adapters that let other tools use mixma models; each imports its tool only when used."""
