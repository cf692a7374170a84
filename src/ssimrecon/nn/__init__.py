"""The U-Net and its model bundles."""
