#!/bin/sh
# Make Fashion-MNIST available offline: $MIMSTUDY_DATA if set, else Debian's dataset-fashion-mnist.
set -eu
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
has_all() {
    for f in $files; do
        [ -f "$1/$f.gz" ] || [ -f "$1/$f" ] || return 1
    done
}
if [ -n "${MIMSTUDY_DATA:-}" ]; then
    has_all "$MIMSTUDY_DATA" && { echo "data: using MIMSTUDY_DATA=$MIMSTUDY_DATA"; exit 0; }
    echo "data: MIMSTUDY_DATA=$MIMSTUDY_DATA lacks some of: $files (.gz or plain)" >&2
    exit 1
fi
dir=/usr/share/datasets/fashion-mnist
has_all "$dir" && { echo "data: using $dir"; exit 0; }
if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "data: installing Debian's dataset-fashion-mnist"
    $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || {
        $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; }
    has_all "$dir" && exit 0
fi
cat >&2 <<MSG
data: Fashion-MNIST not found and apt-get could not install it.
  Put the four IDX files ($files, gzipped or not)
  in a folder and point MIMSTUDY_DATA at it, e.g.  export MIMSTUDY_DATA=\$HOME/data/fashion-mnist
MSG
exit 1
