"""Datasets: download and preparation, metadata readers, the synthetic benchmark, torch datasets.

Submodules are imported on demand (``from fcam.data.metadata import read_split``) so that
importing :mod:`fcam.data` stays cheap.
"""
