import os
import sys

# testfs (tests/vfs/testfs.py): the small block-backed filesystem the VFS tests use.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "vfs"))
