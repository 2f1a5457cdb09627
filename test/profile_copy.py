"""Helpers for tests that write edited copies of the shipped profiles into a temporary folder."""
import os


def absolute_paths(node, folder):
    """Relative file paths (``../x``) of a profile made absolute, so a copy works elsewhere."""
    if isinstance(node, dict):
        return {k: absolute_paths(v, folder) for k, v in node.items()}
    if isinstance(node, list):
        return [absolute_paths(v, folder) for v in node]
    if isinstance(node, str) and node.startswith('../'):
        return os.path.normpath(os.path.join(folder, node))
    return node
