#!/usr/bin/env bash
# Create one virtual environment per peer under /tmp (never in the project's venv) and install it.
#   bash bench/peers/setup.sh [distilabel|curator ...]     (default: both)
set -u
PY=${PYTHON:-python3}
peers=("$@"); [ ${#peers[@]} -eq 0 ] && peers=(distilabel curator)
for peer in "${peers[@]}"; do
  venv=/tmp/medloom-peer-$peer
  case $peer in
    distilabel) pkgs=("distilabel[openai]" aiohttp requests) ;;
    curator) pkgs=(bespokelabs-curator aiohttp) ;;
    *) echo "unknown peer $peer"; exit 2 ;;
  esac
  [ -x $venv/bin/python ] || $PY -m venv $venv
  echo "== $peer: installing ${pkgs[*]} into $venv"
  $venv/bin/python -m pip install -q --disable-pip-version-check "${pkgs[@]}" > $venv.install.log 2>&1 \
    && echo "== $peer: ok ($($venv/bin/python -m pip show ${pkgs[0]%%[*} 2>/dev/null | grep ^Version))" \
    || { echo "== $peer: install FAILED, see $venv.install.log"; tail -5 $venv.install.log; }
done
