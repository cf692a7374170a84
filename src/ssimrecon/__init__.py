"""ssimrecon: SSIM-regularised deep learning MR reconstruction (Pawar et al., ISMRM 2019)."""

__version__ = "0.1.0"
