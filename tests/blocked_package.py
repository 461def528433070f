"""Script prelude for a child process in which ``astromer_hf`` cannot be imported (``trust_remote_code`` tests)."""

BLOCK_ASTROMER_HF = '''
import sys

class BlockAstromerHF:
    def find_spec(self, name, path=None, target=None):
        if name == "astromer_hf" or name.startswith("astromer_hf."):
            raise ImportError("astromer_hf is blocked in this process")

sys.meta_path.insert(0, BlockAstromerHF())
'''
