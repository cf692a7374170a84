"""Stages 4-5: centred FFT, undersampling mask, preprocessing, HDF5 k-space shards."""
