"""Compatibility layers for other TSSL-BP code bases."""
