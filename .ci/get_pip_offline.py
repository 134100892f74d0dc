"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test bootstraps pip in each sanity virtualenv with a get-pip script fetched from a host that build machines
without general internet access cannot reach. This script does the same job with the standard library's ensurepip,
then installs the requested packages from the machine's configured package index.
"""

import os
import subprocess
import sys


def main():
    saved_environment = dict(os.environ)
    import ensurepip  # pylint: disable=import-outside-toplevel

    ensurepip.bootstrap(upgrade=True)
    # ensurepip drops PIP_* variables and points PIP_CONFIG_FILE at /dev/null: give pip its index settings back.
    os.environ.clear()
    os.environ.update(saved_environment)
    arguments = [argument for argument in sys.argv[1:] if argument not in ("--no-setuptools", "--no-wheel")]
    return subprocess.call([sys.executable, "-m", "pip", "install"] + arguments)


if __name__ == "__main__":
    sys.exit(main())
