import os
import sys

# Use the package from this source tree (python/) unless one is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
