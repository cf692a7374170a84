"""`ssimrecon bench`: measures the ssimrecon library from outside it."""
