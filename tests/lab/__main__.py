"""Command line of the lab: ``python -m lab start|stop|serve|status --state FILE`` (with tests/ on PYTHONPATH)."""

import argparse
import json
import os
import sys

from lab.control import serve, start_detached, stop_detached


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description="The shadowsnap.ec2 lab: AWS and Windows on loopback.")
    parser.add_argument("command", choices=("start", "stop", "serve", "status"))
    parser.add_argument("--state", default=os.path.join("build", "lab", "state.json"), help="where the running lab describes itself")
    parser.add_argument("--log", default=None, help="log file of a detached lab (default: next to the state file)")
    options = parser.parse_args(argv)
    state_file = os.path.abspath(options.state)
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    if options.command == "serve":
        serve(state_file)
    elif options.command == "start":
        state = start_detached(state_file, options.log or os.path.splitext(state_file)[0] + ".log")
        sys.stdout.write("lab running (pid %d), AWS endpoint %s\n" % (state["pid"], state["aws_endpoint_url"]))
    elif options.command == "stop":
        sys.stdout.write("lab stopped\n" if stop_detached(state_file) else "no lab was running\n")
    else:
        if not os.path.exists(state_file):
            sys.stdout.write("no lab is running\n")
            return 1
        with open(state_file, encoding="utf-8") as handle:
            json.dump(json.load(handle), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
