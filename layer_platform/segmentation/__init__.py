"""Six-layer 3D segmentation: train on annotated scans, segment every scan, check its anatomy."""
