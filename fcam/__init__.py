"""fcam: a reproducible pipeline for F-CAM (Belharbi et al., WACV 2022).

F-CAM keeps a weakly-supervised classifier frozen and trains a U-Net decoder on its features
to turn a low-resolution class activation map (CAM) into a full-resolution foreground map.
"""

__version__ = "0.1.0"
