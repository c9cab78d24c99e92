"""Backbone and tipr models."""

from tipr.models.backbone import BackboneConfig, CLIPBackbone, Features, build_backbone

__all__ = ["BackboneConfig", "CLIPBackbone", "Features", "build_backbone"]
