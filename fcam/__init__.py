"""fcam: a reproducible pipeline for F-CAM (Belharbi et al., WACV 2022).

F-CAM keeps a weakly-supervised classifier frozen and trains a U-Net decoder on its features
to turn a low-resolution class activation map (CAM) into a full-resolution foreground map.
"""

import os

__version__ = "0.1.0"

# MLflow 3 sends usage telemetry and stores an installation id in ~/.config/mlflow unless told
# not to; fcam's runs are local and write nothing into the user's home unasked. Set before any
# fcam module imports mlflow (it reads the variable at import). MLFLOW_DISABLE_TELEMETRY=false opts in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
