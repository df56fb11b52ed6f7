"""Encoders (being written)."""
from dataclasses import dataclass


@dataclass
class EncoderDef:
    name: str
    plugin: str = ""


RESNET50 = EncoderDef("resnet50")
EFFICIENTNET_LITE0 = EncoderDef("efficientnet-lite0")
