"""rayir: neural information retrieval as a distributed batch system on Ray."""

from .models import BiEncoderConfig, CrossEncoderConfig
from .modules import BiEncoderModule, CrossEncoderModule, ScoringOutput

__version__ = "0.1.0"

__all__ = ["BiEncoderConfig", "BiEncoderModule", "CrossEncoderConfig", "CrossEncoderModule", "ScoringOutput"]
