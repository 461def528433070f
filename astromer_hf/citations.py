"""BibTeX of the Astromer papers and of this package, for model cards and release records.

A module of its own, with no imports, so that :mod:`astromer_hf.model_card` and :mod:`astromer_hf.releases` can both
use them without importing each other (the converter imports the model card, and the releases import the converter).
"""

CITATION_ASTROMER_1 = """@article{donoso2023astromer,
  title   = {{ASTROMER}: A transformer-based embedding for the representation of light curves},
  author  = {Donoso-Oliva, C. and Becker, I. and Protopapas, P. and Cabrera-Vives, G. and Vishnu, M. and Vardhan, H.},
  journal = {Astronomy \\& Astrophysics},
  volume  = {670},
  pages   = {A54},
  year    = {2023}
}"""
CITATION_ASTROMER_2 = """@article{donoso2025astromer2,
  title   = {Astromer 2},
  author  = {Donoso-Oliva, C. and Becker, I. and Protopapas, P. and Cabrera-Vives, G. and others},
  journal = {arXiv e-prints},
  eprint  = {2502.02717},
  year    = {2025}
}"""
SOFTWARE_CITATION = """@software{astromer_hf,
  title  = {astromer\\_hf: Astromer on PyTorch, Lightning and the Hugging Face stack},
  author = {{astromer\\_hf contributors}},
  year   = {2026}
}"""
