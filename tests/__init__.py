"""The test suite; its subpackages mirror src/ssimrecon's."""
