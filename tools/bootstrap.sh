#!/bin/sh
# Create or refresh the project's virtual environment: tools/bootstrap.sh PYTHON VENV
set -eu
python="$1"
venv="$2"
if ! "$python" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' 2>/dev/null; then
  echo "error: esb-hw needs Python 3.11 to 3.13; '$python' is $("$python" --version 2>&1 || echo missing)." >&2
  echo "       Run make with PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing python3-venv with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "error: '$python -m venv' is not available; install python3-venv (sudo apt-get install python3-venv)" >&2
    exit 2
  fi
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test,estimate,plot,mnist,images,explore]'
