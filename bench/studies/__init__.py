"""Work built from many runs or steps: speed profiles, sweeps over recipe families, reruns."""
