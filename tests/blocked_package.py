"""Script preludes for child processes in which some packages cannot be imported: ``astromer_hf`` itself
(``trust_remote_code`` tests), or the optional extras (the core install must work without them)."""


def block_modules(*names: str) -> str:
    """Python source that makes importing any of ``names`` (or their submodules) raise ImportError."""
    return f'''
import sys

class BlockModules:
    names = {tuple(names)!r}

    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in self.names):
            raise ImportError(f"{{name}} is blocked in this process")

sys.meta_path.insert(0, BlockModules())
'''


BLOCK_ASTROMER_HF = block_modules("astromer_hf")
