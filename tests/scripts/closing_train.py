"""`nla train` with the tiny model's rollouts partly closed (`close_some_rollouts`), for the
multi-process tests: Lightning's launcher starts rank 1 by running this same script, so every
rank is patched alike."""

import sys

from nla_variants.cli import main
from nla_variants.testing import close_some_rollouts

if __name__ == "__main__":
    close_some_rollouts()
    sys.exit(main(sys.argv[1:]))
