"""NFP in Python: induction-head discovery with rigorous Jacobian bounds."""

__version__ = "0.1.0"
