"""Place the offline get-pip stand-in where ansible-test looks for its cached bootstrap script."""

import os
import shutil
import sys

from ansible_test._internal.python_requirements import get_venv_packages


class _Python:
    version = "%d.%d" % sys.version_info[:2]


def main():
    pip_version = get_venv_packages(_Python())["pip"]
    cache_path = os.path.expanduser("~/.ansible/test/cache/get_pip_%s.py" % pip_version.replace(".", "_"))
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "get_pip_offline.py"), cache_path)
    print(cache_path)


if __name__ == "__main__":
    main()
