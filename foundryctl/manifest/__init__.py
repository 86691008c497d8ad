"""Manifest files -> a validated Manifest with the source position of every value."""

from foundryctl.manifest.loader import load_manifest
from foundryctl.manifest.model import Manifest, ResourceDecl

__all__ = ["Manifest", "ResourceDecl", "load_manifest"]
